# Reference numbers for lumbar's GEE (src/lumbar/analysis/gee.py).
#
# For each dataset: geepack::geeglm, Gaussian, identity link, exchangeable working
# correlation, on the rows with outcome, baseline and covariates observed, with
#   y ~ 0 + visit + visit:arm + baseline + covariates
# (lumbar's visit + arm:visit + one baseline slope + covariates), sorted by
# participant then visit. Reported: each arm minus the reference at each visit
# with the robust (sandwich) SE, the estimated exchangeable correlation and scale.
#
# Run from the repository root:  Rscript tests/reference/gee.R
# Writes tests/reference/gee.json.

suppressPackageStartupMessages({
  library(geepack)
  library(jsonlite)
})
source("tests/reference/lib/datasets.R")

results <- list()
for (name in names(reference_datasets())) {
  dataset <- reference_datasets()[[name]]
  d <- complete_rows(dataset)
  d <- d[order(d$id, d$visit), ]
  d$cluster <- as.integer(factor(d$id, levels = unique(d$id)))
  covariates <- if (length(dataset$covariates)) paste("+", paste(dataset$covariates, collapse = " + ")) else ""
  formula <- as.formula(paste("y ~ 0 + visit + visit:arm + baseline", covariates))
  fit <- geeglm(formula, id = cluster, data = d, family = gaussian, corstr = "exchangeable")
  coefs <- coef(summary(fit))
  arms <- levels(d$arm)
  contrasts <- list()
  for (visit in levels(d$visit)) {
    for (arm in arms[-1]) {
      term <- paste0("visit", visit, ":arm", arm)
      contrasts[[length(contrasts) + 1]] <- list(
        visit = visit, arm = arm,
        estimate = unname(coefs[term, "Estimate"]),
        se = unname(coefs[term, "Std.err"])
      )
    }
  }
  results[[name]] <- list(
    contrasts = contrasts,
    correlation = unname(fit$geese$alpha),
    scale = unname(fit$geese$gamma),
    rows = nrow(d)
  )
}

output <- list(
  r_version = R.version.string,
  geepack = as.character(packageVersion("geepack")),
  datasets = results
)
write_json(output, "tests/reference/gee.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
