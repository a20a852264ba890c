# Reference numbers for lumbar's early non-response analysis (src/lumbar/analysis/early_response.py).
#
# Base R only (stats) and jsonlite, on the SYNTHETIC fixture
# tests/reference/data/early_response.csv (one row per made-up participant: rating
# before session 1 = baseline, rating before session 2, responder at the primary
# timepoint, and a cross-validation fold 0..4). Improvement = baseline - rating.
#   rules   "no relief by session 2" (relief: improvement >= 2 points; >= 30% of
#           baseline with baseline > 0) against NON-response: the 2x2 table,
#           sensitivity, specificity, PPV, NPV, each with the 95% Wilson score
#           interval, from prop.test(correct = FALSE)$conf.int (which is Wilson's).
#   auc     improvement separating responders from non-responders: the
#           Mann-Whitney AUC from wilcox.test's W (ties count 1/2), checked
#           against the mean of the pairwise kernel; DeLong's variance from the
#           structural components (DeLong et al., Biometrics 1988); CI = AUC +-
#           qnorm(0.975) sqrt(var), clipped to [0, 1] (pROC's ci.auc "delong").
#   cv      the Youden-optimal relief threshold (candidates: distinct observed
#           improvements, relief = improvement >= t, ties to the smallest),
#           in-sample and by 5-fold cross-validation with the folds of the CSV,
#           the held-out 2x2 tables pooled.
#
# Run from the repository root:  Rscript tests/reference/early_response.R
# Writes tests/reference/early_response.json (well under a second).

suppressPackageStartupMessages(library(jsonlite))

INPUT <- "tests/reference/data/early_response.csv"
OUTPUT <- "tests/reference/early_response.json"
LEVEL <- 0.95
FOLDS <- 5L

d <- read.csv(INPUT, stringsAsFactors = FALSE)
stopifnot(is.logical(d$responder), !anyNA(d))
improvement <- d$baseline - d$rating
non_responder <- !d$responder

wilson <- function(x, n) {
  if (n == 0) return(list(numerator = x, denominator = n, estimate = NA, lower = NA, upper = NA))
  ci <- prop.test(x, n, conf.level = LEVEL, correct = FALSE)$conf.int
  # the closed form, as a check on prop.test
  z <- qnorm(1 - (1 - LEVEL) / 2)
  p <- x / n
  half <- z * sqrt(p * (1 - p) / n + z^2 / (4 * n^2))
  closed <- c(p + z^2 / (2 * n) - half, p + z^2 / (2 * n) + half) / (1 + z^2 / n)
  stopifnot(isTRUE(all.equal(as.numeric(ci), closed, tolerance = 1e-12)))
  list(numerator = x, denominator = n, estimate = p, lower = ci[1], upper = ci[2])
}

table2 <- function(no_relief, nonresp) {
  c(a = sum(no_relief & nonresp), b = sum(no_relief & !nonresp),
    c = sum(!no_relief & nonresp), d = sum(!no_relief & !nonresp))
}

accuracy <- function(name, relief) {
  t <- table2(!relief, non_responder)
  list(relief = name,
       no_relief_non_responder = t[["a"]], no_relief_responder = t[["b"]],
       relief_non_responder = t[["c"]], relief_responder = t[["d"]],
       sensitivity = wilson(t[["a"]], t[["a"]] + t[["c"]]),
       specificity = wilson(t[["d"]], t[["b"]] + t[["d"]]),
       ppv = wilson(t[["a"]], t[["a"]] + t[["b"]]),
       npv = wilson(t[["d"]], t[["c"]] + t[["d"]]))
}

rules <- list(
  accuracy("2 points", improvement >= 2),
  accuracy("30 percent", d$baseline > 0 & 100 * improvement >= 30 * d$baseline)
)

# AUC and DeLong
x <- improvement[non_responder]
y <- improvement[!non_responder]
m <- length(x)
n <- length(y)
psi <- outer(x, y, function(xi, yj) (yj > xi) + 0.5 * (yj == xi))
w <- suppressWarnings(wilcox.test(y, x, exact = FALSE)$statistic)
auc <- unname(w) / (m * n)
stopifnot(isTRUE(all.equal(auc, mean(psi), tolerance = 1e-12)))
v10 <- rowMeans(psi)
v01 <- colMeans(psi)
variance <- var(v10) / m + var(v01) / n
z <- qnorm(1 - (1 - LEVEL) / 2)
auc_ci <- c(max(0, auc - z * sqrt(variance)), min(1, auc + z * sqrt(variance)))

# Cross-validated Youden threshold
youden <- function(imp, nonresp) {
  best <- NA
  best_j <- -Inf
  for (t in sort(unique(imp))) {
    tab <- table2(imp < t, nonresp)
    j <- tab[["a"]] / (tab[["a"]] + tab[["c"]]) + tab[["d"]] / (tab[["b"]] + tab[["d"]]) - 1
    if (j > best_j + 1e-12) {
      best <- t
      best_j <- j
    }
  }
  best
}
chosen <- youden(improvement, non_responder)
inside <- table2(improvement < chosen, non_responder)
pooled <- c(a = 0, b = 0, c = 0, d = 0)
thresholds <- numeric(0)
for (k in seq_len(FOLDS) - 1L) {
  test <- d$fold == k
  t <- youden(improvement[!test], non_responder[!test])
  thresholds <- c(thresholds, t)
  pooled <- pooled + table2(improvement[test] < t, non_responder[test])
}

out <- list(
  description = paste("SYNTHETIC data. Early non-response: no relief by session 2 vs",
                      "non-response; base R reference for lumbar.analysis.early_response"),
  input = INPUT,
  session = 2L,
  level = LEVEL,
  n = nrow(d),
  non_responders = m,
  rules = rules,
  auc = list(auc = auc, variance = variance, lower = auc_ci[1], upper = auc_ci[2],
             v10 = v10, v01 = v01),
  cv = list(folds = FOLDS,
            in_sample_threshold = chosen,
            in_sample_sensitivity = wilson(inside[["a"]], inside[["a"]] + inside[["c"]]),
            in_sample_specificity = wilson(inside[["d"]], inside[["b"]] + inside[["d"]]),
            fold_thresholds = thresholds,
            out_of_sample_sensitivity = wilson(pooled[["a"]], pooled[["a"]] + pooled[["c"]]),
            out_of_sample_specificity = wilson(pooled[["d"]], pooled[["b"]] + pooled[["d"]])),
  versions = list(R = R.version.string, jsonlite = as.character(packageVersion("jsonlite")))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), OUTPUT)
