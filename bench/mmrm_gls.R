# nlme::gls side of bench/mmrm.py: the same unstructured MMRM as lumbar's, timed.
#
#   Rscript bench/mmrm_gls.R DATA.csv REPEATS BUDGET_SECONDS
#
# Reads the benchmark's simulated long data (participant, arm, visit, baseline,
# y; y empty after dropout), keeps the rows with y observed, and fits
#   gls(y ~ visit * arm + visit:baseline,
#       correlation = corSymm(form = ~ as.integer(visit) | id),
#       weights = varIdent(form = ~ 1 | visit), method = "REML")
# as tests/reference/mmrm.R does, with nlme's default glsControl() (what a user
# gets; the reference script's tight optim settings are slower). Only the gls()
# call is timed (system.time, elapsed), after one untimed warm-up fit on the
# first 50 participants. The fit is repeated up to REPEATS times, stopping once
# the timed runs add up to more than BUDGET_SECONDS.
#
# Prints one JSON object on stdout: the elapsed seconds of each run, the REML
# log-likelihood, and the treatment - control difference at the last visit with
# its model-based SE (from the coefficients and vcov; no emmeans).

suppressPackageStartupMessages({
  library(nlme)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 3L)
path <- args[[1]]
repeats <- as.integer(args[[2]])
budget <- as.numeric(args[[3]])

d <- read.csv(path, stringsAsFactors = FALSE, colClasses = c(participant = "character"))
d <- d[!is.na(d$y), ]
visits <- sort(unique(d$visit))
d$id <- d$participant
d$visit <- factor(d$visit, levels = visits)
d$arm <- factor(d$arm, levels = c("control", "treatment"))

fit_gls <- function(data) {
  gls(y ~ visit * arm + visit:baseline, data = data,
      correlation = corSymm(form = ~ as.integer(visit) | id),
      weights = varIdent(form = ~ 1 | visit), method = "REML")
}

# Treatment - control at the last visit: armtreatment + visit<last>:armtreatment.
last_visit_difference <- function(fit) {
  beta <- coef(fit)
  row <- setNames(numeric(length(beta)), names(beta))
  row["armtreatment"] <- 1
  if (length(visits) > 1L) row[paste0("visit", visits[length(visits)], ":armtreatment")] <- 1
  stopifnot(length(row) == length(beta), sum(row) == min(2, length(visits)))
  list(estimate = sum(row * beta), se = sqrt(drop(row %*% vcov(fit) %*% row)))
}

warm <- d[d$id %in% unique(d$id)[seq_len(min(50L, length(unique(d$id))))], ]
invisible(tryCatch(suppressWarnings(fit_gls(warm)), error = function(e) NULL))

seconds <- numeric()
warnings <- character()
fit <- NULL
failure <- NULL
repeat {
  elapsed <- system.time(
    fit <- tryCatch(
      withCallingHandlers(fit_gls(d), warning = function(w) {
        warnings <<- unique(c(warnings, conditionMessage(w)))
        invokeRestart("muffleWarning")
      }),
      error = function(e) e
    )
  )[["elapsed"]]
  if (inherits(fit, "error")) {
    failure <- conditionMessage(fit)
    break
  }
  seconds <- c(seconds, elapsed)
  if (length(seconds) >= repeats || sum(seconds) > budget) break
}

versions <- list(r = R.version.string, nlme = as.character(packageVersion("nlme")))
result <- if (is.null(failure)) {
  difference <- last_visit_difference(fit)
  list(ok = TRUE, seconds = I(seconds), loglik = as.numeric(logLik(fit, REML = TRUE)),
       difference = difference$estimate, se = difference$se,
       observations = nrow(d), warnings = I(warnings), versions = versions)
} else {
  list(ok = FALSE, error = failure, warnings = I(warnings), versions = versions)
}
cat(toJSON(result, auto_unbox = TRUE, digits = NA), "\n")
