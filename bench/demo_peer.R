# R side of bench/demo.py: the demo's pre-specified analysis of its primary outcomes, timed.
#
#   Rscript bench/demo_peer.R SPEC.json
#
# SPEC.json, written by bench/demo.py from the shipped protocol and lumbar's defaults:
#   data            the de-identified tidy dataset (lumbar export --as statistician), CSV
#   outcomes        the primary outcome columns; each one's baseline is <outcome>_baseline
#   visits          the follow-up visits in time order
#   reference       the reference arm
#   covariates      the protocol's covariates (character columns become factors)
#   imputations, iterations, donors, seed   the multiple imputation's settings
#   repeats         how many times to run the whole analysis
#
# For each outcome, the work lumbar's analysis does (src/lumbar/analysis/):
#   read        read.csv of the dataset (once per run, not per outcome)
#   prep        the rows of the follow-up visits; the arm a factor with the reference
#               first, then the others sorted; character covariates factors with sorted
#               levels; sorted by participant then visit
#   ancova      at each visit, lm(y ~ arm + baseline + covariates) on the rows with y,
#               baseline and covariates observed; emmeans LS means by arm and each arm
#               minus the reference (numeric covariates at their mean: cov.keep =
#               character(0)), as ancova.py
#   mmrm        gls(y ~ visit * arm + visit:baseline + covariates,
#               corSymm(form = ~ as.integer(visit) | id), varIdent(form = ~ 1 | visit),
#               REML, glsControl(natural = FALSE)) with nlme's default optimiser; emmeans
#               LS means by arm at each visit and each arm minus the reference with
#               Satterthwaite df, as tests/reference/mmrm.R (without its tight optimiser
#               settings and numDeriv Hessian, which a user would not add)
#   gee         geepack::geeglm(y ~ 0 + visit + visit:arm + baseline + covariates,
#               gaussian, corstr = "exchangeable"), robust SEs, as gee.py
#   imputation  mice within each arm on the wide table (baseline, covariates, the outcome
#               at each visit): m = imputations, method "pmm", maxit = iterations,
#               donors; then the ANCOVA at each visit on each completed data set, pooled
#               with mice::pool (Rubin's rules, Barnard-Rubin df), as imputation.py
#
# Needs R with nlme, emmeans, geepack, mice and jsonlite (the apt-get line is in the
# Makefile, above its reference target); a missing package is reported in the JSON.
#
# Each part is timed with proc.time() (elapsed); loading the packages is timed apart.
# Prints one JSON object on stdout: the seconds of each part in each run, the
# contrasts (each arm minus the reference at each visit) of the last run, the versions
# of R and the packages, and any warnings.

suppressPackageStartupMessages(library(jsonlite))

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 1L)
spec <- fromJSON(args[[1]])
PACKAGES <- c("nlme", "emmeans", "geepack", "mice")

elapsed <- function() proc.time()[["elapsed"]]

loading <- elapsed()
missing <- PACKAGES[!vapply(PACKAGES, requireNamespace, logical(1), quietly = TRUE)]
if (length(missing)) {
  cat(toJSON(list(ok = FALSE, error = paste("R packages not installed:",
                                            paste(missing, collapse = ", "))),
             auto_unbox = TRUE), "\n")
  quit(status = 0)
}
suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(geepack)
  library(mice)
})
load_seconds <- elapsed() - loading
emm_options(msg.interaction = FALSE, msg.nesting = FALSE)

sorted <- function(x) sort(unique(x[!is.na(x)]), method = "radix")  # as Python's sorted()

# One contrast row per (visit, arm): the JSON record bench/demo.py reads.
record <- function(visit, arm, estimate, se, df, lower, upper) {
  data.frame(visit = visit, arm = arm, estimate = estimate, se = se, df = df,
             lower = lower, upper = upper, stringsAsFactors = FALSE)
}

emmeans_contrasts <- function(emm, visit = NULL) {
  s <- as.data.frame(summary(contrast(emm, "trt.vs.ctrl", ref = 1, adjust = "none"),
                             infer = c(TRUE, TRUE)))
  record(if (is.null(visit)) as.character(s$visit) else visit,
         sub(" - .*$", "", as.character(s$contrast)),
         s$estimate, s$SE, s$df, s$lower.CL, s$upper.CL)
}

prepare <- function(tidy, outcome) {
  rows <- tidy[tidy$visit %in% spec$visits, ]
  d <- data.frame(id = rows$participant, arm = rows$arm,
                  visit = factor(rows$visit, levels = spec$visits),
                  y = as.numeric(rows[[outcome]]),
                  baseline = as.numeric(rows[[paste0(outcome, "_baseline")]]),
                  stringsAsFactors = FALSE)
  for (name in spec$covariates) {
    value <- rows[[name]]
    d[[name]] <- if (is.numeric(value)) as.numeric(value) else
      factor(as.character(value), levels = sorted(as.character(value)))
  }
  others <- sorted(setdiff(unique(d$arm), spec$reference))
  d$arm <- factor(d$arm, levels = c(spec$reference, others))
  # gls sorts its groups by factor(id); emmeans needs the data in that same order.
  d <- d[order(factor(d$id), d$visit), ]
  rownames(d) <- NULL
  d
}

complete_rows <- function(d) {
  d[complete.cases(d[, c("y", "baseline", spec$covariates)]), , drop = FALSE]
}

fit_ancova <- function(d) {
  rows <- complete_rows(d)
  formula <- reformulate(c("arm", "baseline", spec$covariates), response = "y")
  do.call(rbind, lapply(spec$visits, function(visit) {
    at <- rows[rows$visit == visit, ]
    fit <- lm(formula, data = at)
    emm <- emmeans(fit, ~ arm, data = at, cov.keep = character(0))
    invisible(summary(emm, infer = c(TRUE, TRUE)))  # the LS means, as lumbar reports them
    emmeans_contrasts(emm, visit)
  }))
}

fit_mmrm <- function(d) {
  rows <- complete_rows(d)
  formula <- reformulate(c("visit * arm", "visit:baseline", spec$covariates), response = "y")
  # The formula goes into the call itself: emmeans re-evaluates call$model.
  fit <- eval(bquote(gls(.(formula), data = rows,
                         correlation = corSymm(form = ~ as.integer(visit) | id),
                         weights = varIdent(form = ~ 1 | visit), method = "REML",
                         control = glsControl(natural = FALSE))))
  emm <- emmeans(fit, ~ arm | visit, mode = "satterthwaite", data = rows,
                 cov.keep = character(0))
  invisible(summary(emm, infer = c(TRUE, TRUE)))
  emmeans_contrasts(emm)
}

fit_gee <- function(d) {
  rows <- complete_rows(d)
  rows <- rows[order(rows$id, rows$visit), ]
  rows$cluster <- as.integer(factor(rows$id, levels = unique(rows$id)))
  formula <- reformulate(c("0 + visit + visit:arm", "baseline", spec$covariates),
                         response = "y")
  fit <- geeglm(formula, id = cluster, data = rows, family = gaussian,
                corstr = "exchangeable")
  coefs <- coef(summary(fit))
  arms <- levels(rows$arm)[-1]
  grid <- expand.grid(arm = arms, visit = spec$visits, stringsAsFactors = FALSE)
  terms <- paste0("visit", grid$visit, ":arm", grid$arm)
  estimate <- unname(coefs[terms, "Estimate"])
  se <- unname(coefs[terms, "Std.err"])
  z <- qnorm(0.975)
  record(grid$visit, grid$arm, estimate, se, NA_real_, estimate - z * se, estimate + z * se)
}

fit_imputation <- function(d) {
  # The wide table: one row per participant with baseline and covariates observed.
  first <- d[!duplicated(d$id), c("id", "arm", "baseline", spec$covariates)]
  first <- first[complete.cases(first[, c("baseline", spec$covariates)]), ]
  outcomes <- paste0("y", seq_along(spec$visits))
  for (j in seq_along(spec$visits)) {
    at <- d[d$visit == spec$visits[[j]], ]
    first[[outcomes[j]]] <- at$y[match(first$id, at$id)]
  }
  columns <- c("baseline", spec$covariates, outcomes)
  by_arm <- lapply(levels(first$arm), function(arm) {
    rows <- first[first$arm == arm, ]
    list(keys = rows[, c("id", "arm", "baseline", spec$covariates)],
         imputed = mice(rows[, columns], m = spec$imputations, method = "pmm",
                        maxit = spec$iterations, donors = spec$donors, printFlag = FALSE))
  })
  completed <- lapply(seq_len(spec$imputations), function(i) {
    do.call(rbind, lapply(by_arm, function(part) {
      cbind(part$keys, complete(part$imputed, i)[, outcomes, drop = FALSE])
    }))
  })
  arms <- levels(first$arm)[-1]
  do.call(rbind, lapply(seq_along(spec$visits), function(j) {
    formula <- reformulate(c("arm", "baseline", spec$covariates), response = outcomes[j])
    fits <- lapply(completed, function(data) lm(formula, data = data))
    pooled <- summary(pool(as.mira(fits)), conf.int = TRUE)
    rows <- pooled[match(paste0("arm", arms), pooled$term), ]
    record(spec$visits[[j]], arms, rows$estimate, rows$std.error, rows$df,
           rows[["2.5 %"]], rows[["97.5 %"]])
  }))
}

PARTS <- c("read", "prep", "ancova", "mmrm", "gee", "imputation")
MODELS <- list(ancova = fit_ancova, mmrm = fit_mmrm, gee = fit_gee, imputation = fit_imputation)

run_once <- function() {
  seconds <- setNames(numeric(length(PARTS)), PARTS)
  estimates <- list()
  set.seed(spec$seed)
  mark <- elapsed()
  tidy <- read.csv(spec$data, stringsAsFactors = FALSE)
  seconds[["read"]] <- elapsed() - mark
  for (outcome in spec$outcomes) {
    mark <- elapsed()
    d <- prepare(tidy, outcome)
    seconds[["prep"]] <- seconds[["prep"]] + elapsed() - mark
    estimates[[outcome]] <- list()
    for (part in names(MODELS)) {
      mark <- elapsed()
      estimates[[outcome]][[part]] <- MODELS[[part]](d)
      seconds[[part]] <- seconds[[part]] + elapsed() - mark
    }
  }
  list(seconds = as.list(seconds), estimates = estimates)
}

warnings <- character()
runs <- list()
failure <- NULL
for (index in seq_len(spec$repeats)) {
  result <- tryCatch(
    withCallingHandlers(run_once(), warning = function(w) {
      warnings <<- unique(c(warnings, conditionMessage(w)))
      invokeRestart("muffleWarning")
    }),
    error = function(e) e
  )
  if (inherits(result, "error")) {
    failure <- conditionMessage(result)
    break
  }
  runs[[index]] <- result
}

versions <- c(list(r = R.version.string),
              lapply(setNames(PACKAGES, PACKAGES), function(p) as.character(packageVersion(p))))
reply <- if (is.null(failure)) {
  list(ok = TRUE, load_seconds = load_seconds,
       seconds = lapply(runs, `[[`, "seconds"),
       estimates = runs[[length(runs)]]$estimates,
       warnings = I(warnings), versions = versions)
} else {
  list(ok = FALSE, error = failure, warnings = I(warnings), versions = versions)
}
cat(toJSON(reply, auto_unbox = TRUE, digits = NA, dataframe = "rows", na = "null"), "\n")
