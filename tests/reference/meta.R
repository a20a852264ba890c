# Reference numbers for lumbar's meta-analysis (the coming lumbar.synthesis package).
#
# metafor's escalc, rma, predict, weights, confint, leave1out, cumul, regtest and
# ranktest on five study-level datasets:
#   bcg, nielweise2007       binary (2x2 tables): RR (log), OR (log), RD; and
#   nielweise2007_drop00     the same without its double-zero trial (drop00 = TRUE)
#   normand1999, curtis1998  continuous (means, SDs, n): MD, SMD (Hedges' g)
#   clbp_smt                 continuous, real chronic low back pain data: MD, SMD
# For every dataset x measure: escalc's yi and vi per study; for every
# method (FE, DL, REML, PM, ML) x test ("z", "knha"): rma's estimate, SE,
# statistic, p, CI, tau2 and its SE, I2, H2, Q, the KH factor, both
# log-likelihoods, predict() (with its prediction interval, and the Riley t
# interval), weights() and, for the random-effects methods, the Q-profile CI of
# tau2, I2 and H2 from confint(). Then subgroup analyses, meta-regression,
# leave-one-out, cumulative meta-analysis, Egger's regression test and the rank
# correlation test. The README (tests/reference/README.md, "meta.R") lists every
# metafor option that changes the numbers.
#
# The four metafor datasets come from the R package metadat, which metafor
# loads. This script writes them to tests/reference/data/dat.*.csv (write.csv,
# 15 significant digits), reads them back, checks they agree with metadat to
# 1e-14 relative, and analyses the CSV, so that R and lumbar read the same
# numbers; `make reference` then also catches a change in metadat.
#
# Run from the repository root:  Rscript tests/reference/meta.R
# Writes tests/reference/meta.json and tests/reference/data/dat.*.csv (about 8 s).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
source("tests/reference/lib/datasets.R")

OUTPUT <- "tests/reference/meta.json"
DATA_DIR <- "tests/reference/data"
LEVEL <- 95
METHODS <- c("FE", "DL", "REML", "PM", "ML")
RANDOM_METHODS <- c("DL", "REML", "PM", "ML")
TESTS <- c("z", "knha")
# metafor's defaults are threshold = 1e-5 (Fisher scoring for REML/ML stops
# when tau2 changes by less), tol = .Machine$double.eps^0.25 (uniroot for PM,
# and the ML/REML check against tau2 = 0) and tau2.max = 100 (upper end of PM's
# search; too low for the MD of clbp_smt and normand1999). Tightened so that
# agreement to 1e-5 means something. Fisher scoring converges linearly and
# tau2 lives on the scale of the vi (about 1e-4 for a risk difference, 1e2 for
# a mean difference in days), so the threshold is relative to the median vi:
# a fixed 1e-10 left the ML tau2 of nielweise2007 RD 5e-6 (relative) short,
# and 1e-14 cannot be reached by a tau2 of 700. confint() reads tau2.max from
# the fit; leave1out, cumul and regtest refit with the fit's control.
THRESHOLD_PER_MEDIAN_VI <- 1e-12
control_for <- function(vi) {
  list(threshold = THRESHOLD_PER_MEDIAN_VI * stats::median(vi), maxiter = 10000L,
       tol = 1e-12, tau2.max = 1e6)
}
CONFINT_CONTROL <- list(tol = 1e-12, maxiter = 1000L)
# escalc's defaults, written out: add 1/2 to every cell of a 2x2 table with a
# zero cell (also for RD), keep double-zero studies (except in the dataset
# nielweise2007_drop00), large-sample variances.
ESCALC <- list(add = 1 / 2, to = "only0", drop00 = FALSE, vtype = "LS")

# ---------------------------------------------------------------------------
# Datasets

export_metadat <- function(name) {
  original <- as.data.frame(get(name))
  file <- paste0(name, ".csv")
  path <- file.path(DATA_DIR, file)
  write.csv(original, path, row.names = FALSE, fileEncoding = "UTF-8")
  back <- read.csv(path, stringsAsFactors = FALSE, fileEncoding = "UTF-8")
  stopifnot(identical(names(back), names(original)), nrow(back) == nrow(original))
  for (column in names(original)) {
    a <- original[[column]]
    b <- back[[column]]
    # write.csv keeps 15 significant digits: a few of curtis1998's values
    # (6.8168999999999995 for 6.8169) come back one unit in the last place apart.
    same <- if (is.numeric(a)) isTRUE(all.equal(as.numeric(a), as.numeric(b), tolerance = 1e-14))
      else identical(as.character(a), as.character(b))
    if (!same) stop(sprintf("%s: column %s changed in the CSV round trip", name, column))
  }
  list(file = file, data = back)
}

# Each dataset: its CSV, its study labels, the escalc arguments lumbar maps to,
# and the measures computed from them.
reference_datasets_meta <- function() {
  bcg <- export_metadat("dat.bcg")
  nielweise <- export_metadat("dat.nielweise2007")
  normand <- export_metadat("dat.normand1999")
  curtis <- export_metadat("dat.curtis1998")
  clbp <- read.csv(file.path(DATA_DIR, "clbp_smt.csv"), stringsAsFactors = FALSE)
  binary <- c("RR", "OR", "RD")
  continuous <- c("MD", "SMD")
  list(
    bcg = list(
      file = bcg$file, source = "metadat::dat.bcg", type = "binary", measures = binary,
      study = with(bcg$data, paste(author, year)),
      columns = list(events1 = "tpos", n1 = "tpos + tneg", events2 = "cpos", n2 = "cpos + cneg"),
      inputs = with(bcg$data, list(ai = tpos, n1i = tpos + tneg, ci = cpos, n2i = cpos + cneg)),
      data = bcg$data
    ),
    nielweise2007 = list(
      file = nielweise$file, source = "metadat::dat.nielweise2007", type = "binary",
      measures = binary,
      study = with(nielweise$data, paste(author, year)),
      columns = list(events1 = "ai", n1 = "n1i", events2 = "ci", n2 = "n2i"),
      inputs = with(nielweise$data, list(ai = ai, n1i = n1i, ci = ci, n2i = n2i)),
      data = nielweise$data
    ),
    # The same trials with escalc(drop00 = TRUE): Yucel 2004 (no events in
    # either arm) has no effect size and the models use the other 17. For an
    # implementation that refuses double-zero studies rather than correcting them.
    nielweise2007_drop00 = list(
      file = nielweise$file, source = "metadat::dat.nielweise2007", type = "binary",
      measures = binary, drop00 = TRUE,
      study = with(nielweise$data, paste(author, year)),
      columns = list(events1 = "ai", n1 = "n1i", events2 = "ci", n2 = "n2i"),
      inputs = with(nielweise$data, list(ai = ai, n1i = n1i, ci = ci, n2i = n2i)),
      data = nielweise$data
    ),
    normand1999 = list(
      file = normand$file, source = "metadat::dat.normand1999", type = "continuous",
      measures = continuous,
      study = normand$data$source,
      columns = list(mean1 = "m1i", sd1 = "sd1i", n1 = "n1i",
                     mean2 = "m2i", sd2 = "sd2i", n2 = "n2i"),
      inputs = with(normand$data, list(m1i = m1i, sd1i = sd1i, n1i = n1i,
                                       m2i = m2i, sd2i = sd2i, n2i = n2i)),
      data = normand$data
    ),
    curtis1998 = list(
      file = curtis$file, source = "metadat::dat.curtis1998", type = "continuous",
      measures = continuous,
      study = as.character(curtis$data$id),
      columns = list(mean1 = "m1i", sd1 = "sd1i", n1 = "n1i",
                     mean2 = "m2i", sd2 = "sd2i", n2 = "n2i"),
      inputs = with(curtis$data, list(m1i = m1i, sd1i = sd1i, n1i = n1i,
                                      m2i = m2i, sd2i = sd2i, n2i = n2i)),
      data = curtis$data
    ),
    clbp_smt = list(
      file = "clbp_smt.csv", source = "github nomahi/flexmeta data/clbp.RData",
      type = "continuous", measures = continuous,
      study = clbp$Source,
      columns = list(mean1 = "m1", sd1 = "s1", n1 = "n1", mean2 = "m2", sd2 = "s2", n2 = "n2"),
      inputs = with(clbp, list(m1i = m1, sd1i = s1, n1i = n1, m2i = m2, sd2i = s2, n2i = n2)),
      data = clbp
    )
  )
}

# escalc's yi and vi for the rows it keeps (all of them unless the dataset asks
# for drop00 = TRUE, which leaves double-zero tables without an effect size).
effect_sizes <- function(dataset, measure) {
  x <- dataset$inputs
  drop00 <- isTRUE(dataset$drop00)
  es <- if (dataset$type == "binary") {
    escalc(measure, ai = x$ai, n1i = x$n1i, ci = x$ci, n2i = x$n2i,
           add = ESCALC$add, to = ESCALC$to, drop00 = drop00, vtype = ESCALC$vtype)
  } else {
    escalc(measure, m1i = x$m1i, sd1i = x$sd1i, n1i = x$n1i,
           m2i = x$m2i, sd2i = x$sd2i, n2i = x$n2i, vtype = ESCALC$vtype)
  }
  rows <- which(!is.na(es$yi))
  stopifnot(identical(rows, which(!is.na(es$vi))),
            drop00 || length(rows) == length(es$yi),
            !drop00 || identical(rows, which(!double_zero(dataset))))
  yi <- as.numeric(es$yi)[rows]
  vi <- as.numeric(es$vi)[rows]
  list(rows = rows, yi = yi, vi = vi, control = control_for(vi))
}

double_zero <- function(dataset) {
  x <- dataset$inputs
  (x$ai == 0 & x$ci == 0) | (x$ai == x$n1i & x$ci == x$n2i)
}

# Which 2x2 tables escalc corrected (to = "only0": any cell zero).
corrected_tables <- function(dataset) {
  x <- dataset$inputs
  x$ai == 0 | x$ci == 0 | x$n1i - x$ai == 0 | x$n2i - x$ci == 0
}

# ---------------------------------------------------------------------------
# Helpers

# Evaluate expr, collecting its warnings (metafor's messages are part of the record).
with_warnings <- function(expr) {
  messages <- character(0)
  value <- withCallingHandlers(expr, warning = function(w) {
    messages <<- c(messages, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  list(value = value, warnings = messages)
}

num <- function(x) if (is.null(x)) NA_real_ else unname(as.numeric(x))
# A JSON array even when of length 1 (auto_unbox would make it a scalar).
arr <- function(x) I(unname(x))

# rma(); mods, when given, is a formula over the columns of data.
fit_rma <- function(yi, vi, method, test, control, mods = NULL, data = NULL) {
  if (is.null(mods)) {
    with_warnings(rma(yi = yi, vi = vi, method = method, test = test,
                      level = LEVEL, control = control))
  } else {
    with_warnings(rma(yi = yi, vi = vi, mods = mods, data = data, method = method,
                      test = test, level = LEVEL, control = control))
  }
}

tau2_ci_record <- function(fit) {
  if (!is.element(fit$method, RANDOM_METHODS)) return(NA)
  run <- with_warnings(confint(fit, control = CONFINT_CONTROL))
  random <- run$value$random
  list(
    type = "QP",
    tau2 = arr(num(random["tau^2", ])), tau = arr(num(random["tau", ])),
    I2 = arr(num(random["I^2(%)", ])), H2 = arr(num(random["H^2", ])),
    lb_sign = run$value$lb.sign, ub_sign = run$value$ub.sign,
    ci_null = run$value$ci.null,
    warnings = arr(run$warnings)
  )
}

prediction_record <- function(fit) {
  default <- predict(fit, level = LEVEL)
  riley <- predict(fit, level = LEVEL, pi.type = "riley")
  random <- is.element(fit$method, RANDOM_METHODS)
  list(
    pred = num(default$pred), se = num(default$se),
    ci_lb = num(default$ci.lb), ci_ub = num(default$ci.ub),
    pi_lb = if (random) num(default$pi.lb) else NA,
    pi_ub = if (random) num(default$pi.ub) else NA,
    pi_df = if (random && fit$test != "z") num(default$pi.ddf) else NA,
    riley_pi_lb = if (random) num(riley$pi.lb) else NA,
    riley_pi_ub = if (random) num(riley$pi.ub) else NA,
    riley_pi_df = if (random) num(riley$pi.ddf) else NA
  )
}

heterogeneity_record <- function(fit) {
  list(
    tau2 = num(fit$tau2), se_tau2 = num(fit$se.tau2),
    I2 = num(fit$I2), H2 = num(fit$H2), vt = num(fit$vt),
    QE = num(fit$QE), QE_df = fit$k - fit$p, QEp = num(fit$QEp)
  )
}

test_record <- function(fit) {
  list(
    statistic_distribution = if (fit$test == "z") "normal" else "t",
    df = if (fit$test == "z") NA else num(fit$ddf),
    knha_factor = num(fit$s2w)
  )
}

loglik_record <- function(fit) {
  list(ML = num(fit$fit.stats["ll", "ML"]), REML = num(fit$fit.stats["ll", "REML"]))
}

# One intercept-only fit, as every Python test will read it.
pooled_record <- function(yi, vi, method, test, control, weights = TRUE, confidence = TRUE) {
  run <- fit_rma(yi, vi, method, test, control)
  fit <- run$value
  stopifnot(fit$p == 1L, fit$int.only)
  record <- c(
    list(method = method, metafor_method = fit$method, test = test, k = fit$k,
         estimate = num(fit$b), se = num(fit$se), statistic = num(fit$zval),
         pval = num(fit$pval), ci_lb = num(fit$ci.lb), ci_ub = num(fit$ci.ub)),
    test_record(fit),
    heterogeneity_record(fit),
    list(loglik = loglik_record(fit), prediction = prediction_record(fit))
  )
  if (weights) record$weights <- arr(num(weights(fit)))
  if (confidence) record$tau2_ci <- tau2_ci_record(fit)
  record$warnings <- arr(run$warnings)
  list(record = record, fit = fit)
}

coefficient_records <- function(fit) {
  lapply(seq_len(fit$p), function(j) list(
    name = rownames(fit$b)[j], estimate = num(fit$b[j]), se = num(fit$se[j]),
    statistic = num(fit$zval[j]), pval = num(fit$pval[j]),
    ci_lb = num(fit$ci.lb[j]), ci_ub = num(fit$ci.ub[j])
  ))
}

moderator_test_record <- function(fit) {
  list(QM = num(fit$QM), QM_df = arr(num(fit$QMdf)), QMp = num(fit$QMp),
       QM_distribution = if (fit$test == "z") "chisq" else "F")
}

# ---------------------------------------------------------------------------
# Analyses

dataset_record <- function(name, dataset) {
  measures <- list()
  for (measure in dataset$measures) {
    es <- effect_sizes(dataset, measure)
    fits <- list()
    for (method in METHODS) for (test in TESTS) {
      fits[[length(fits) + 1]] <- pooled_record(es$yi, es$vi, method, test, es$control)$record
    }
    entry <- list(yi = arr(es$yi), vi = arr(es$vi), rma_control = es$control)
    if (dataset$type == "binary") entry$corrected <- arr(corrected_tables(dataset)[es$rows])
    entry$fits <- fits
    measures[[measure]] <- entry
  }
  rows <- effect_sizes(dataset, dataset$measures[1])$rows
  list(file = dataset$file, source = dataset$source, type = dataset$type,
       columns = dataset$columns, drop00 = isTRUE(dataset$drop00),
       rows = arr(rows), study = arr(dataset$study[rows]), k = length(rows),
       measures = measures)
}

# Subgroups: separate fits per level, and two tests of subgroup differences.
subgroup_records <- function(name, dataset, measure, moderator) {
  es <- effect_sizes(dataset, measure)
  stopifnot(length(es$rows) == nrow(dataset$data))
  group <- as.character(dataset$data[[moderator]])
  levels <- sort(unique(group))
  group <- factor(group, levels = levels)
  out <- list()
  for (method in c("FE", "DL", "REML")) for (test in TESTS) {
    groups <- lapply(levels, function(level) {
      keep <- group == level
      c(list(level = level),
        pooled_record(es$yi[keep], es$vi[keep], method, test, es$control,
                      weights = FALSE)$record)
    })
    # Test of differences from the separate fits: Q of the group estimates with
    # weights 1 / SE^2 on G - 1 df (the "separate tau2" test of RevMan and
    # meta::update(subgroup=, tau.common = FALSE)). With test = "z" only.
    separate <- NA
    if (test == "z") {
      estimates <- vapply(groups, function(g) g$estimate, numeric(1))
      ses <- vapply(groups, function(g) g$se, numeric(1))
      w <- 1 / ses^2
      Q <- sum(w * (estimates - sum(w * estimates) / sum(w))^2)
      between <- suppressWarnings(rma(yi = estimates, sei = ses, method = "FE", control = es$control))
      stopifnot(isTRUE(all.equal(Q, between$QE, tolerance = 1e-12)))
      separate <- list(Q = Q, df = length(levels) - 1,
                       pval = pchisq(Q, length(levels) - 1, lower.tail = FALSE))
    }
    # Test of differences from one model with the moderator: QM of
    # rma(mods = ~ group). FE: the fixed-effect Q-between, equal to Q total
    # minus the sum of the within-group Q. DL/REML: mixed-effects model with one
    # tau2 common to all groups (tau2 re-estimated from the residuals).
    run <- fit_rma(es$yi, es$vi, method, test, es$control, mods = ~ group,
                   data = data.frame(group = group))
    fit <- run$value
    model <- c(
      list(formula = "~ group", reference = levels[1]),
      moderator_test_record(fit),
      list(coefficients = coefficient_records(fit)),
      heterogeneity_record(fit),
      list(warnings = arr(run$warnings))
    )
    if (method == "FE" && test == "z") {
      total <- suppressWarnings(rma(yi = es$yi, vi = es$vi, method = "FE", control = es$control))$QE
      within <- sum(vapply(groups, function(g) g$QE, numeric(1)))
      stopifnot(isTRUE(all.equal(fit$QM, total - within, tolerance = 1e-10)),
                isTRUE(all.equal(fit$QM, separate$Q, tolerance = 1e-10)))
    }
    out[[length(out) + 1]] <- list(
      dataset = name, measure = measure, moderator = moderator, levels = arr(levels),
      method = method, test = test,
      groups = groups, separate = separate, moderator_model = model
    )
  }
  out
}

metareg_records <- function(name, dataset, measure, moderators) {
  es <- effect_sizes(dataset, measure)
  d <- dataset$data
  stopifnot(length(es$rows) == nrow(d))
  formula <- reformulate(moderators)
  out <- list()
  for (method in METHODS) for (test in TESTS) {
    run <- fit_rma(es$yi, es$vi, method, test, es$control, mods = formula, data = d)
    fit <- run$value
    out[[length(out) + 1]] <- c(
      list(dataset = name, measure = measure, moderators = arr(moderators),
           formula = paste(deparse(formula), collapse = " "),
           method = method, metafor_method = fit$method, test = test, k = fit$k, p = fit$p,
           coefficients = coefficient_records(fit)),
      moderator_test_record(fit),
      test_record(fit),
      heterogeneity_record(fit),
      list(R2 = num(fit$R2), loglik = loglik_record(fit),
           tau2_ci = tau2_ci_record(fit), warnings = arr(run$warnings))
    )
  }
  out
}

# The columns of a leave1out() or cumul() table under one set of names: metafor
# calls the statistic tval with test = "knha", and cumul's p column pvals.
sequence_columns <- function(frame) {
  pick <- function(...) {
    for (n in c(...)) if (!is.null(frame[[n]])) return(arr(num(frame[[n]])))
    stop("missing column ", paste(c(...), collapse = "/"))
  }
  list(estimate = pick("estimate"), se = pick("se"), statistic = pick("zval", "tval"),
       pval = pick("pval", "pvals"), ci_lb = pick("ci.lb"), ci_ub = pick("ci.ub"),
       Q = pick("Q"), Qp = pick("Qp"), tau2 = pick("tau2"), I2 = pick("I2"), H2 = pick("H2"))
}

leave1out_records <- function(name, dataset, measure) {
  es <- effect_sizes(dataset, measure)
  out <- list()
  for (method in c("DL", "REML")) for (test in TESTS) {
    fit <- fit_rma(es$yi, es$vi, method, test, es$control)$value
    run <- with_warnings(leave1out(fit))
    frame <- as.data.frame(run$value)
    stopifnot(nrow(frame) == fit$k)
    out[[length(out) + 1]] <- c(
      list(dataset = name, measure = measure, method = method, test = test,
           omitted = arr(seq_len(fit$k)), study = arr(dataset$study)),
      sequence_columns(frame),
      list(warnings = arr(run$warnings))
    )
  }
  out
}

cumul_records <- function(name, dataset, measure, by) {
  es <- effect_sizes(dataset, measure)
  key <- dataset$data[[by]]
  out <- list()
  for (method in c("DL", "REML")) for (test in TESTS) {
    # cumul() looks its order argument up in the data the model was fitted with.
    d <- data.frame(yi = es$yi, vi = es$vi, key = key)
    fit <- with_warnings(rma(yi, vi, data = d, method = method, test = test, level = LEVEL,
                             control = es$control))$value
    run <- with_warnings(cumul(fit, order = key))
    frame <- as.data.frame(run$value)
    order <- order(key)  # cumul orders with order(): ties keep dataset order
    stopifnot(nrow(frame) == fit$k)
    out[[length(out) + 1]] <- c(
      list(dataset = name, measure = measure, method = method, test = test, order_by = by,
           added = arr(order), study = arr(dataset$study[order]), key = arr(key[order])),
      sequence_columns(frame),
      list(warnings = arr(run$warnings))
    )
  }
  out
}

egger_records <- function(name, dataset, measure) {
  es <- effect_sizes(dataset, measure)
  out <- list()
  cases <- list(
    list(model = "rma", method = "REML", test = "z"),
    list(model = "rma", method = "REML", test = "knha"),
    list(model = "rma", method = "FE", test = "z"),
    list(model = "lm", method = "FE", test = "z")
  )
  for (case in cases) {
    fit <- fit_rma(es$yi, es$vi, case$method, case$test, es$control)$value
    run <- with_warnings(regtest(fit, model = case$model, predictor = "sei"))
    result <- run$value
    inner <- result$fit
    coefficients <- if (case$model == "lm") {
      table <- coef(summary(inner))
      lapply(seq_len(nrow(table)), function(j) list(
        name = c("intrcpt", "sei")[j], estimate = num(table[j, 1]), se = num(table[j, 2]),
        statistic = num(table[j, 3]), pval = num(table[j, 4])))
    } else {
      coefficient_records(inner)
    }
    out[[length(out) + 1]] <- list(
      dataset = name, measure = measure, model = case$model,
      method = if (case$model == "rma") case$method else NA,
      test = if (case$model == "rma") case$test else "t",
      predictor = "sei",
      statistic = num(result$zval), df = num(result$ddf), pval = num(result$pval),
      limit_estimate = num(result$est), limit_ci_lb = num(result$ci.lb),
      limit_ci_ub = num(result$ci.ub),
      tau2 = if (case$model == "rma") num(inner$tau2) else NA,
      residual_scale = if (case$model == "lm") num(summary(inner)$sigma) else NA,
      coefficients = coefficients,
      warnings = arr(run$warnings)
    )
  }
  out
}

ranktest_record <- function(name, dataset, measure) {
  es <- effect_sizes(dataset, measure)
  fit <- fit_rma(es$yi, es$vi, "REML", "z", es$control)$value
  run <- with_warnings(ranktest(fit))
  # ranktest: Kendall's tau between the standardized deviations from the FE
  # estimate, (yi - theta) / sqrt(vi - 1 / sum(wi)), and vi; exact p without ties.
  wi <- 1 / es$vi
  theta <- sum(wi * es$yi) / sum(wi)
  ystar <- (es$yi - theta) / sqrt(es$vi - 1 / sum(wi))
  ties <- anyDuplicated(ystar) > 0 || anyDuplicated(es$vi) > 0
  list(dataset = name, measure = measure, tau = num(run$value$tau),
       pval = num(run$value$pval), exact = !ties, warnings = arr(run$warnings))
}

# A made-up mean-difference dataset whose ML log-likelihood of tau2 has two
# maxima (six precise studies agreeing, two imprecise ones far away): the global
# one at tau2 = 0, a local one near 6, where Fisher scoring from the DL estimate
# ends. metafor compares the answer with tau2 = 0 (its ll0check) and warns. The
# profile (logLik with tau2 fixed on a grid) lets the Python test check its own.
bimodal_records <- function() {
  data <- read.csv(file.path(DATA_DIR, "bimodal_md.csv"), stringsAsFactors = FALSE)
  es <- escalc("MD", m1i = mean1, sd1i = sd1, n1i = n1, m2i = mean2, sd2i = sd2, n2i = n2,
               data = data)
  control <- control_for(es$vi)
  grid <- c(0, 10^seq(-4, 2, length.out = 121))
  out <- list()
  for (method in c("ML", "REML")) {
    run <- with_warnings(rma(yi, vi, data = es, method = method, level = LEVEL,
                             control = control))
    fit <- run$value
    profile <- vapply(grid, function(t) {
      as.numeric(logLik(rma(yi, vi, data = es, method = method, tau2 = t)))
    }, numeric(1))
    out[[length(out) + 1]] <- list(
      dataset = "bimodal_md", file = "bimodal_md.csv", measure = "MD", method = method,
      study = arr(data$study), yi = arr(num(es$yi)), vi = arr(num(es$vi)),
      tau2 = num(fit$tau2), estimate = num(fit$b), se = num(fit$se), I2 = num(fit$I2),
      loglik = num(logLik(fit)), profile_tau2 = arr(grid), profile_loglik = arr(profile),
      warnings = arr(run$warnings)
    )
  }
  out
}

# ---------------------------------------------------------------------------

started <- proc.time()[["elapsed"]]
datasets <- reference_datasets_meta()
result <- list(
  description = paste(
    "Reference meta-analysis from R metafor: escalc yi/vi per study; rma for every",
    "measure x method (FE, DL, REML, PM, ML) x test (z, knha) with predict(), weights()",
    "(percent) and the Q-profile CI of tau2 (confint); subgroups, meta-regression,",
    "leave1out, cumul, regtest (Egger) and ranktest. See tests/reference/README.md."
  ),
  script = "tests/reference/meta.R",
  level = LEVEL,
  options = list(
    escalc = ESCALC,
    rma_control = list(threshold = paste(THRESHOLD_PER_MEDIAN_VI, "x median(vi)"),
                       maxiter = 10000L, tol = 1e-12, tau2.max = 1e6),
    confint_control = CONFINT_CONTROL,
    methods = arr(METHODS),
    tests = arr(TESTS),
    metafor_method_for_FE = "FE"
  ),
  versions = reference_versions(c("stats", "metafor", "metadat", "jsonlite")),
  datasets = mapply(dataset_record, names(datasets), datasets, SIMPLIFY = FALSE),
  subgroup = c(
    subgroup_records("bcg", datasets$bcg, "RR", "alloc"),
    subgroup_records("curtis1998", datasets$curtis1998, "MD", "method"),
    subgroup_records("curtis1998", datasets$curtis1998, "SMD", "method")
  ),
  metareg = c(
    metareg_records("bcg", datasets$bcg, "RR", "ablat"),
    metareg_records("bcg", datasets$bcg, "RR", c("ablat", "year"))
  ),
  leave1out = leave1out_records("bcg", datasets$bcg, "RR"),
  cumul = cumul_records("bcg", datasets$bcg, "RR", "year"),
  bimodal = bimodal_records(),
  egger = c(
    egger_records("bcg", datasets$bcg, "RR"),
    egger_records("clbp_smt", datasets$clbp_smt, "MD"),
    egger_records("clbp_smt", datasets$clbp_smt, "SMD")
  ),
  ranktest = list(
    ranktest_record("bcg", datasets$bcg, "RR"),
    ranktest_record("clbp_smt", datasets$clbp_smt, "MD"),
    ranktest_record("clbp_smt", datasets$clbp_smt, "SMD")
  )
)
write_json(result, OUTPUT, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
message(sprintf("wrote %s in %.1f s", OUTPUT, proc.time()[["elapsed"]] - started))
