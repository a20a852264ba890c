# Reference numbers for lumbar's ANCOVA (src/lumbar/analysis/ancova.py).
#
# At each visit of each dataset: lm(y ~ arm + baseline + covariates) on the rows
# with the outcome, baseline and covariates observed.
#   contrasts  each arm minus the reference: the lm coefficient, its SE, t, p and
#              95% CI on the residual df (classical: summary.lm / confint;
#              HC3: sandwich::vcovHC(fit, type = "HC3"), t on the residual df);
#   lsmeans    emmeans(fit, ~ arm) with emmeans' defaults (numeric covariates and
#              the baseline at their mean over the model rows, factors equal
#              weights) except cov.keep = character(0): emmeans' default
#              (cov.keep = "2") would treat a numeric covariate with two distinct
#              values, such as acupuncture's 0/1 sex and migraine, as a two-level
#              factor (LS means at 0.5 instead of the mean); HC3 with
#              vcov. = vcovHC(fit, type = "HC3").
#
# Run from the repository root:  Rscript tests/reference/ancova.R
# Writes tests/reference/ancova.json.

suppressPackageStartupMessages({
  library(emmeans)
  library(sandwich)
  library(jsonlite)
})
source("tests/reference/lib/datasets.R")
emm_options(msg.interaction = FALSE, msg.nesting = FALSE)

ALPHA <- 0.05
OUTPUT <- "tests/reference/ancova.json"

contrast_records <- function(fit, V, visit, arms, counts) {
  df <- fit$df.residual
  beta <- coef(fit)
  quantile <- qt(1 - ALPHA / 2, df)
  lapply(arms[-1], function(arm) {
    name <- paste0("arm", arm)
    estimate <- unname(beta[name])
    se <- sqrt(unname(V[name, name]))
    statistic <- estimate / se
    list(
      visit = visit, arm = arm, reference = arms[1],
      estimate = estimate, se = se, df = df, statistic = statistic,
      p = 2 * pt(-abs(statistic), df),
      lower = estimate - quantile * se, upper = estimate + quantile * se,
      n = unname(counts[arm])
    )
  })
}

lsmean_records <- function(fit, d, V, visit, counts) {
  emm <- emmeans(fit, ~ arm, data = d, vcov. = V, cov.keep = character(0))
  s <- as.data.frame(summary(emm, infer = c(TRUE, TRUE), level = 1 - ALPHA))
  lapply(seq_len(nrow(s)), function(i) {
    arm <- as.character(s$arm[i])
    list(
      visit = visit, arm = arm,
      estimate = s$emmean[i], se = s$SE[i], df = s$df[i], statistic = s$t.ratio[i],
      p = s$p.value[i], lower = s$lower.CL[i], upper = s$upper.CL[i],
      n = unname(counts[arm])
    )
  })
}

ancova_dataset <- function(dataset) {
  rows <- complete_rows(dataset)
  arms <- levels(rows$arm)
  visits <- levels(rows$visit)
  formula <- reformulate(c("arm", "baseline", dataset$covariates), response = "y")
  out <- list(classical = list(contrasts = list(), lsmeans = list()),
              hc3 = list(contrasts = list(), lsmeans = list()))
  fits <- list()
  for (visit in visits) {
    d <- rows[rows$visit == visit, , drop = FALSE]
    fit <- lm(formula, data = d)
    stopifnot(!anyNA(coef(fit)))
    counts <- table(factor(d$arm, levels = arms))
    # Classical: the lm covariance; the contrasts cross-checked against summary.lm and confint.
    classical <- vcov(fit)
    table_lm <- coef(summary(fit))
    ci_lm <- confint(fit, level = 1 - ALPHA)
    records <- contrast_records(fit, classical, visit, arms, counts)
    for (record in records) {
      name <- paste0("arm", record$arm)
      stopifnot(
        isTRUE(all.equal(record$se, table_lm[name, "Std. Error"], tolerance = 1e-12)),
        isTRUE(all.equal(record$p, table_lm[name, "Pr(>|t|)"], tolerance = 1e-10)),
        isTRUE(all.equal(record$lower, ci_lm[name, 1], tolerance = 1e-12))
      )
    }
    out$classical$contrasts <- c(out$classical$contrasts, records)
    out$classical$lsmeans <- c(out$classical$lsmeans,
                               lsmean_records(fit, d, classical, visit, counts))
    hc3 <- vcovHC(fit, type = "HC3")
    out$hc3$contrasts <- c(out$hc3$contrasts, contrast_records(fit, hc3, visit, arms, counts))
    out$hc3$lsmeans <- c(out$hc3$lsmeans, lsmean_records(fit, d, hc3, visit, counts))
    fits[[visit]] <- list(
      visit = visit, rows = nrow(d), residual_df = fit$df.residual,
      sigma = summary(fit)$sigma, coefficients = as.list(coef(fit))
    )
  }
  list(
    file = dataset$file, mapping = dataset$mapping,
    reference = arms[1], arms = arms, visits = visits,
    model = paste(deparse(formula), collapse = " "),
    fits = unname(fits),
    classical = out$classical, hc3 = out$hc3
  )
}

started <- proc.time()[["elapsed"]]
datasets <- reference_datasets()
result <- list(
  description = paste(
    "Reference ANCOVA at each visit, from R: lm(y ~ arm + baseline + covariates);",
    "contrasts = each arm minus the reference (lm coefficient; t on the residual df);",
    "lsmeans = emmeans(fit, ~ arm, cov.keep = character(0)): numeric covariates at their mean,",
    "factors with equal weights;",
    "hc3 = the same with sandwich::vcovHC(fit, type = 'HC3')."
  ),
  script = "tests/reference/ancova.R",
  alpha = ALPHA,
  versions = reference_versions(c("stats", "emmeans", "sandwich", "jsonlite")),
  datasets = lapply(datasets, ancova_dataset)
)
write_json(result, OUTPUT, digits = NA, auto_unbox = TRUE, pretty = TRUE)
message(sprintf("wrote %s in %.1f s", OUTPUT, proc.time()[["elapsed"]] - started))
