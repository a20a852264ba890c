# Reference numbers for lumbar's Rubin's rules (src/lumbar/analysis/imputation.py: pool).
#
# Reads the five data sets lumbar completed (tests/reference/data/mi_completed_synthetic.csv,
# written by tests/reference/make_mi_completed.py), fits the ANCOVA
#   lm(y ~ arm + baseline + age + sex)
# at each visit on each completed data set, and pools with mice::pool (Rubin's rules with
# Barnard-Rubin degrees of freedom). Reported per visit and arm (arm minus usual care):
# the pooled estimate, ubar, b, t, df, riv, lambda, fmi, the pooled SE and 95% CI.
#
# Run from the repository root:  Rscript tests/reference/pool.R
# Writes tests/reference/pool.json.

suppressPackageStartupMessages({
  library(mice)
  library(jsonlite)
})

d <- read.csv("tests/reference/data/mi_completed_synthetic.csv", stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("usual_care", "relaxation", "structural"))
d$sex <- factor(d$sex, levels = c("female", "male"))

results <- list()
for (visit in c("week_10", "week_26", "week_52")) {
  fits <- lapply(sort(unique(d$imputation)), function(m) {
    lm(y ~ arm + baseline + age + sex, data = d[d$imputation == m & d$visit == visit, ])
  })
  pooled <- pool(as.mira(fits))
  table <- pooled$pooled
  summary_table <- summary(pooled, conf.int = TRUE)
  for (arm in c("relaxation", "structural")) {
    term <- paste0("arm", arm)
    row <- table[table$term == term, ]
    srow <- summary_table[summary_table$term == term, ]
    results[[length(results) + 1]] <- list(
      visit = visit, arm = arm,
      estimate = row$estimate, ubar = row$ubar, b = row$b, t = row$t,
      dfcom = row$dfcom, df = row$df, riv = row$riv, lambda = row$lambda, fmi = row$fmi,
      se = srow$std.error, lower = srow[["2.5 %"]], upper = srow[["97.5 %"]], p = srow$p.value
    )
  }
}

write_json(
  list(r_version = R.version.string, mice = as.character(packageVersion("mice")),
       m = length(unique(d$imputation)), pooled = results),
  "tests/reference/pool.json", digits = NA, auto_unbox = TRUE, pretty = TRUE
)
