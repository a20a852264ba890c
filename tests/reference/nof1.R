# Reference numbers for lumbar's N-of-1 analysis (src/lumbar/analysis/nof1.py).
#
# Base R (stats), nlme and jsonlite, on the SYNTHETIC fixture
# tests/reference/data/nof1.csv (one row per period of 6 made-up clients: client,
# pair, condition massage/none, score = the period's mean 0-10 rating; written by
# tests/reference/make_nof1.py).
#   clients  per client: pair differences d = none - massage; the mean and its 95%
#            CI from t.test(none, massage, paired = TRUE); the exact two-sided
#            randomization p-value over all 2^n sign flips of d (observed pattern
#            included; |mean| >= |observed| - 1e-9 relative counts as extreme).
#   pooled   nlme::lme(d ~ 1, random = ~ 1 | client, method = "REML"): the fixed
#            effect, its SE, tau^2 (between clients), sigma^2 (within), the REML
#            log-likelihood, nlme's own df, and the CI on (clients - 1) df, which is
#            the CI lumbar reports.
#
# Run from the repository root:  Rscript tests/reference/nof1.R
# Writes tests/reference/nof1.json (well under a second).

suppressPackageStartupMessages({
  library(jsonlite)
  library(nlme)
})

INPUT <- "tests/reference/data/nof1.csv"
OUTPUT <- "tests/reference/nof1.json"
LEVEL <- 0.95
TIE <- 1e-9

d <- read.csv(INPUT, stringsAsFactors = FALSE)
stopifnot(!anyNA(d), all(d$condition %in% c("massage", "none")))

pairs_of <- function(part) {
  m <- part[part$condition == "massage", ]
  n <- part[part$condition == "none", ]
  m <- m[order(m$pair), ]
  n <- n[order(n$pair), ]
  stopifnot(identical(m$pair, n$pair))
  data.frame(pair = m$pair, massage = m$score, none = n$score)
}

exact_p <- function(x) {
  k <- length(x)
  signs <- as.matrix(expand.grid(rep(list(c(1, -1)), k)))
  means <- as.vector(signs %*% x) / k
  observed <- abs(mean(x))
  c(as_extreme = sum(abs(means) >= observed - TIE * max(1, observed)), patterns = nrow(signs))
}

clients <- list()
long <- NULL
for (client in sort(unique(d$client))) {
  w <- pairs_of(d[d$client == client, ])
  diff <- w$none - w$massage
  tt <- t.test(w$none, w$massage, paired = TRUE, conf.level = LEVEL)
  p <- exact_p(diff)
  clients[[length(clients) + 1]] <- list(
    client = client, pairs = w$pair, differences = diff,
    mean_difference = unname(tt$estimate), sd = sd(diff), df = unname(tt$parameter),
    lower = tt$conf.int[1], upper = tt$conf.int[2],
    as_extreme = unname(p["as_extreme"]), patterns = unname(p["patterns"]),
    p_value = unname(p["as_extreme"] / p["patterns"])
  )
  long <- rbind(long, data.frame(client = client, d = diff))
}

fit <- lme(d ~ 1, random = ~ 1 | client, data = long, method = "REML",
           control = lmeControl(msTol = 1e-12, tolerance = 1e-12, niterEM = 200))
table <- summary(fit)$tTable
k <- length(unique(long$client))
mu <- unname(fixef(fit)[1])
se <- unname(table[1, "Std.Error"])
# VarCorr() prints variances to 7 digits; take them at full precision instead
vc <- c(as.numeric(getVarCov(fit)), fit$sigma^2)
half <- qt(1 - (1 - LEVEL) / 2, k - 1) * se

out <- list(
  description = paste("SYNTHETIC data. N-of-1 series of 6 made-up clients; base R and nlme",
                      "reference for lumbar.analysis.nof1"),
  input = INPUT,
  level = LEVEL,
  clients = clients,
  pooled = list(clients = k, pairs = nrow(long), mu = mu, se = se,
                nlme_df = unname(table[1, "DF"]), df = k - 1,
                lower = mu - half, upper = mu + half,
                tau2 = vc[1], sigma2 = vc[2], log_likelihood = as.numeric(logLik(fit))),
  versions = list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
                  jsonlite = as.character(packageVersion("jsonlite")))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), OUTPUT)
