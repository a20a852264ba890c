# Reference numbers for lumbar's MMRM (src/lumbar/analysis/mmrm.py).
#
# For each dataset and covariance structure: nlme::gls by REML on the rows with
# the outcome, baseline and covariates observed, with the mean model
#   y ~ visit * arm + visit:baseline + covariates
# (the same column space as lumbar's 0 + visit + arm:visit + baseline:visit +
# covariates; an intercept form because emmeans' gls gradient needs one) and
#   unstructured       corSymm(form = ~ as.integer(visit) | id) + varIdent(form = ~ 1 | visit)
#   compound_symmetry  corCompSymm(form = ~ 1 | id)
#   ar1                corAR1(form = ~ as.integer(visit) | id)
#   toeplitz           corARMA(form = ~ as.integer(visit) | id, p = T - 1, q = 0)
# Reported: the REML log-likelihood, the marginal covariance matrix over all T
# visits, LS means emmeans(fit, ~ arm | visit, mode = "satterthwaite") and the
# contrasts each arm minus the reference at each visit (trt.vs.ctrl, no
# adjustment), with Satterthwaite df, t tests and 95% CIs.
#
# Set-up details that matter (each one silently changes the numbers otherwise):
#   - the data are sorted by factor(id) then visit, as gls sorts its groups, and
#     the same sorted data are given to emmeans (data = d): emmeans rebuilds the
#     model matrix from `data` and pairs it with gls's internal (sorted) structures;
#   - glsControl(natural = FALSE), so apVar is in the parametrization of
#     coef(modelStruct) and emmeans takes its analytic Satterthwaite path;
#   - the formula is written into the gls call (bquote), as emmeans re-evaluates
#     call$model;
#   - the optimum is found to full precision (optim BFGS, msTol = 1e-15; see
#     CONTROLS) and apVar is recomputed with an accurate Hessian (see
#     accurate_apvar): nlme's defaults leave the unstructured fits' covariances
#     off by up to 4e-4 and their Satterthwaite df off by 0.4% to 10%;
#   - emmeans gets cov.keep = character(0), so every numeric covariate is at its
#     mean (its default treats a 0/1 covariate as a two-level factor).
# A structure that does not converge is recorded with converged = false and the
# error message; it is never dropped.
#
# Run from the repository root:  Rscript tests/reference/mmrm.R
# Writes tests/reference/mmrm.json.

suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(jsonlite)
})
source("tests/reference/lib/datasets.R")
emm_options(msg.interaction = FALSE, msg.nesting = FALSE)

ALPHA <- 0.05
OUTPUT <- "tests/reference/mmrm.json"
STRUCTURES <- c("unstructured", "compound_symmetry", "ar1", "toeplitz")

# The correlation and weights arguments of gls, as expressions (kept in the call).
structure_arguments <- function(structure, visits) {
  switch(structure,
    unstructured = list(
      correlation = quote(corSymm(form = ~ as.integer(visit) | id)),
      weights = quote(varIdent(form = ~ 1 | visit))
    ),
    compound_symmetry = list(correlation = quote(corCompSymm(form = ~ 1 | id)), weights = NULL),
    ar1 = list(correlation = quote(corAR1(form = ~ as.integer(visit) | id)), weights = NULL),
    toeplitz = list(
      correlation = bquote(
        corARMA(form = ~ as.integer(visit) | id, p = .(length(visits) - 1L), q = 0)
      ),
      weights = NULL
    ),
    stop("unknown structure ", structure)
  )
}

# Attempts in order. The first is the one used when it converges: nlme's optim
# route (BFGS) with a tight relative tolerance. nlme's default (nlminb, whose
# relative tolerance of 1e-10 on the objective cannot be changed through
# glsControl) stops about 1e-7 short of the optimum in log-likelihood, which for
# the unstructured matrix moves small covariances by up to 4e-4 relatively.
# A later attempt is used only if the earlier ones fail; the JSON says which one
# produced the numbers and why the others failed.
CONTROLS <- list(
  optim_tight = quote(glsControl(natural = FALSE, opt = "optim", optimMethod = "BFGS",
                                 msTol = 1e-15, tolerance = 1e-10, maxIter = 200)),
  nlminb_default = quote(glsControl(natural = FALSE)),
  nlminb_more_iterations = quote(glsControl(natural = FALSE, maxIter = 500, msMaxIter = 500))
)

fit_gls <- function(formula, d, structure, visits) {
  arguments <- structure_arguments(structure, visits)
  attempts <- list()
  for (name in names(CONTROLS)) {
    call <- if (is.null(arguments$weights)) {
      bquote(gls(.(formula), data = d, correlation = .(arguments$correlation),
                 method = "REML", control = .(CONTROLS[[name]])))
    } else {
      bquote(gls(.(formula), data = d, correlation = .(arguments$correlation),
                 weights = .(arguments$weights), method = "REML",
                 control = .(CONTROLS[[name]])))
    }
    warnings <- character()
    fit <- tryCatch(
      withCallingHandlers(eval(call), warning = function(w) {
        warnings <<- c(warnings, conditionMessage(w))
        invokeRestart("muffleWarning")
      }),
      error = function(e) e
    )
    if (inherits(fit, "error")) {
      attempts[[length(attempts) + 1]] <- list(control = name, error = conditionMessage(fit),
                                               warnings = I(warnings))
      next
    }
    if (length(warnings)) {
      attempts[[length(attempts) + 1]] <- list(control = name, error = "warnings: not used",
                                               warnings = I(warnings))
      next
    }
    if (!is.matrix(fit$apVar)) {
      # apVar is a message when nlme could not invert the Hessian (a non-identified optimum).
      attempts[[length(attempts) + 1]] <- list(
        control = name, error = paste("apVar not available:", paste(fit$apVar, collapse = " ")),
        warnings = I(warnings)
      )
      next
    }
    attempts[[length(attempts) + 1]] <- list(control = name, error = NA, warnings = I(warnings))
    return(list(fit = fit, control = name, attempts = attempts,
                call = paste(deparse(call, width.cutoff = 500L), collapse = " ")))
  }
  list(fit = NULL, control = NULL, attempts = attempts, call = NULL)
}

# The marginal covariance over all visits, from a participant observed at every
# visit (getVarCov), checked against one assembled from corMatrix and varIdent.
marginal_covariance <- function(fit, d, visits) {
  counts <- tapply(d$visit, factor(d$id), function(v) length(unique(v)))
  full <- names(counts)[counts == length(visits)][1]
  stopifnot(!is.na(full))
  rows <- d[d$id == full, ]
  stopifnot(identical(as.character(rows$visit), visits))
  sigma <- unclass(getVarCov(fit, individual = full))
  attributes(sigma) <- list(dim = dim(sigma))
  # Assembled by hand: correlation of the same participant, sd ratios by visit level.
  correlation <- corMatrix(fit$modelStruct$corStruct)[[full]]
  ratio <- rep(1, length(visits))
  if (!is.null(fit$modelStruct$varStruct)) {
    ratios <- coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
    ratio <- unname(ratios[visits])
  }
  sds <- fit$sigma * ratio
  assembled <- correlation * outer(sds, sds)
  stopifnot(isTRUE(all.equal(sigma, unname(assembled), tolerance = 1e-10)))
  sigma
}

# nlme's apVar is minus the inverse Hessian of the REML log-likelihood in
# (coef(modelStruct), log sigma), from nlme::fdHess: a one-step finite difference
# with relative step 6e-6 (at least 0.05 * 6e-6 absolute). At that step rounding
# dominates: for the unstructured fits some entries of apVar are off by 1% to 75%
# and emmeans' Satterthwaite df by 0.4% to 10% (erratically: the error depends on
# where in the last digits the optimiser stopped). The reference instead takes the
# Hessian of the very same function (nlme's glsApVar.fullGlsLogLik, at the same
# parameters) by Richardson extrapolation (numDeriv::hessian), and puts it in
# apVar with the attributes emmeans checks; everything else is nlme's and
# emmeans' own. The df emmeans gives with nlme's own apVar is kept as
# df_nlme_apvar, for comparison.
accurate_apvar <- function(fit, formula, d) {
  X <- model.matrix(formula, d)
  # The linear model as gls holds it (d is already in gls's order).
  conlin <- list(Xy = cbind(X, y = d$y), dims = list(N = nrow(X), p = ncol(X), REML = 1L),
                 logLik = 0, sigma = 0, fixedSigma = FALSE)
  pars <- attr(fit$apVar, "Pars")
  stopifnot(!isTRUE(attr(fit$apVar, "natural")), !is.null(pars),
            max(abs(pars[-length(pars)] - coef(fit$modelStruct))) < 1e-12)
  free <- nrow(X) - ncol(X)
  loglik <- function(p) {
    nlme:::glsApVar.fullGlsLogLik(p, fit$modelStruct, conlin, conlin$dims, free)
  }
  hessian <- numDeriv::hessian(loglik, unname(pars))
  stopifnot(all(eigen(hessian, symmetric = TRUE, only.values = TRUE)$values < 0))
  value <- solve(-hessian)
  dimnames(value) <- dimnames(fit$apVar)
  attr(value, "Pars") <- pars
  attr(value, "natural") <- FALSE
  value
}

# The REML log-likelihood computed directly (the textbook formula, as in lumbar's
# mmrm.py docstring) at gls's estimate: a check that logLik(fit) means the same thing.
reml_loglik <- function(fit, formula, d, sigma) {
  X <- model.matrix(formula, d)
  y <- d$y
  index <- as.integer(d$visit)
  M <- matrix(0, ncol(X), ncol(X))
  cross <- rep(0, ncol(X))
  logdet <- 0
  groups <- split(seq_len(nrow(d)), factor(d$id))
  for (g in groups) {
    block <- sigma[index[g], index[g], drop = FALSE]
    inverse <- solve(block)
    logdet <- logdet + as.numeric(determinant(block)$modulus)
    M <- M + crossprod(X[g, , drop = FALSE], inverse %*% X[g, , drop = FALSE])
    cross <- cross + crossprod(X[g, , drop = FALSE], inverse %*% y[g])
  }
  beta <- solve(M, cross)
  quadratic <- 0
  for (g in groups) {
    residual <- y[g] - X[g, , drop = FALSE] %*% beta
    quadratic <- quadratic +
      sum(residual * solve(sigma[index[g], index[g], drop = FALSE], residual))
  }
  -0.5 * (logdet + as.numeric(determinant(M)$modulus) + quadratic) -
    0.5 * (nrow(X) - ncol(X)) * log(2 * pi)
}

# LS means by arm at each visit, and each arm minus the reference at each visit.
# cov.keep = character(0): every numeric covariate at its mean over the model
# rows. (emmeans' default cov.keep = "2" would treat a numeric covariate with two
# distinct values, such as acupuncture's 0/1 sex and migraine, as a two-level
# factor and average over 0 and 1 with equal weights.)
emmeans_summaries <- function(fit, d) {
  messages <- character()
  emm <- withCallingHandlers(
    emmeans(fit, ~ arm | visit, mode = "satterthwaite", data = d, cov.keep = character(0)),
    message = function(m) {
      messages <<- c(messages, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  contrasts <- contrast(emm, "trt.vs.ctrl", ref = 1, adjust = "none")
  list(
    method = attr(emm@dffun, "mesg"),
    messages = messages,
    lsmeans = as.data.frame(summary(emm, infer = c(TRUE, TRUE), level = 1 - ALPHA)),
    contrasts = as.data.frame(summary(contrasts, infer = c(TRUE, TRUE), level = 1 - ALPHA))
  )
}

emmeans_records <- function(s, nlme_s, counts, kind) {
  stopifnot(nrow(s) == nrow(nlme_s))
  lapply(seq_len(nrow(s)), function(i) {
    visit <- as.character(s$visit[i])
    if (kind == "lsmeans") {
      arm <- as.character(s$arm[i])
      estimate <- s$emmean[i]
    } else {
      arm <- sub(" - .*$", "", as.character(s$contrast[i]))
      estimate <- s$estimate[i]
    }
    list(
      visit = visit, arm = arm,
      estimate = estimate, se = s$SE[i], df = s$df[i], statistic = s$t.ratio[i],
      p = s$p.value[i], lower = s$lower.CL[i], upper = s$upper.CL[i],
      n = unname(counts[visit, arm]),
      df_nlme_apvar = nlme_s$df[i]
    )
  })
}

mmrm_structure <- function(structure, formula, d, visits, arms) {
  started <- proc.time()[["elapsed"]]
  attempt <- fit_gls(formula, d, structure, visits)
  fit <- attempt$fit
  base <- list(structure = structure, attempts = attempt$attempts)
  if (is.null(fit)) {
    message(sprintf("  %s: did not converge", structure))
    return(c(base, list(converged = FALSE)))
  }
  sigma <- marginal_covariance(fit, d, visits)
  loglik <- as.numeric(logLik(fit, REML = TRUE))
  direct <- reml_loglik(fit, formula, d, sigma)
  stopifnot(abs(direct - loglik) < 1e-8 * abs(loglik))
  nlme_apvar <- fit$apVar
  fit$apVar <- accurate_apvar(fit, formula, d)
  reference <- emmeans_summaries(fit, d)
  fit$apVar <- nlme_apvar
  nlme_df <- emmeans_summaries(fit, d)
  stopifnot(reference$method == "satterthwaite", nlme_df$method == "satterthwaite")
  counts <- table(factor(d$visit, levels = visits), factor(d$arm, levels = arms))
  message(sprintf("  %s: logLik %.4f (%.1f s)", structure, loglik,
                  proc.time()[["elapsed"]] - started))
  c(base, list(
    converged = TRUE,
    control = attempt$control,
    call = attempt$call,
    emmeans_messages = I(reference$messages),
    df_method = reference$method,
    apvar = "numDeriv::hessian of nlme's REML log-likelihood (nlme's fdHess apVar replaced)",
    reml_loglik = loglik,
    reml_loglik_direct = direct,
    covariance_parameters = length(coef(fit$modelStruct)) + 1L,
    sigma = list(visits = visits, matrix = sigma),
    coefficients = as.list(coef(fit)),
    lsmeans = emmeans_records(reference$lsmeans, nlme_df$lsmeans, counts, "lsmeans"),
    contrasts = emmeans_records(reference$contrasts, nlme_df$contrasts, counts, "contrasts")
  ))
}

mmrm_dataset <- function(name, dataset) {
  message(name)
  d <- complete_rows(dataset)
  # Sort as gls sorts its groups (and keep this order for emmeans).
  d <- d[order(factor(d$id), d$visit), ]
  rownames(d) <- NULL
  stopifnot(identical(order(factor(d$id)), seq_len(nrow(d))))
  visits <- levels(d$visit)
  arms <- levels(d$arm)
  terms <- c("visit * arm", "visit:baseline", dataset$covariates)
  formula <- reformulate(terms, response = "y")
  list(
    file = dataset$file, mapping = dataset$mapping,
    reference = arms[1], arms = arms, visits = visits,
    model = paste(deparse(formula), collapse = " "),
    observations = nrow(d), participants = length(unique(d$id)),
    structures = setNames(
      lapply(STRUCTURES, mmrm_structure, formula = formula, d = d, visits = visits, arms = arms),
      STRUCTURES
    )
  )
}

started <- proc.time()[["elapsed"]]
datasets <- reference_datasets()
result <- list(
  description = paste(
    "Reference MMRM from R: nlme::gls by REML, y ~ visit * arm + visit:baseline + covariates,",
    "four covariance structures; LS means and contrasts (each arm minus the reference at",
    "each visit) by emmeans with Satterthwaite df (mode = 'satterthwaite')."
  ),
  script = "tests/reference/mmrm.R",
  alpha = ALPHA,
  structures = list(
    unstructured = "corSymm(form = ~ as.integer(visit) | id) + varIdent(form = ~ 1 | visit)",
    compound_symmetry = "corCompSymm(form = ~ 1 | id)",
    ar1 = "corAR1(form = ~ as.integer(visit) | id)",
    toeplitz = "corARMA(form = ~ as.integer(visit) | id, p = T - 1, q = 0)"
  ),
  setup = c(
    "Data sorted by factor(id) then visit (gls's group order) and passed to emmeans as data.",
    "glsControl(natural = FALSE): apVar in the parametrization of coef(modelStruct).",
    paste("Fitted with optim BFGS, msTol = 1e-15 (attempt 'optim_tight'); if that fails,",
          "nlme's default nlminb ('nlminb_default'): see each structure's attempts."),
    paste("apVar replaced by minus the inverse of numDeriv::hessian of nlme's own REML",
          "log-likelihood at the same parameters; df_nlme_apvar is emmeans' df with nlme's",
          "fdHess apVar, off by 0.4% to 10% for the unstructured fits."),
    paste("emmeans(..., cov.keep = character(0)): every numeric covariate at its mean over",
          "the model rows (the default would treat 0/1 covariates as two-level factors).")
  ),
  versions = reference_versions(c("nlme", "emmeans", "numDeriv", "jsonlite")),
  datasets = mapply(mmrm_dataset, names(datasets), datasets, SIMPLIFY = FALSE)
)
failed <- unlist(lapply(names(result$datasets), function(name) {
  s <- result$datasets[[name]]$structures
  bad <- names(s)[!vapply(s, function(x) isTRUE(x$converged), logical(1))]
  if (length(bad)) paste(name, bad) else character()
}))
result$not_converged <- I(failed)
write_json(result, OUTPUT, digits = NA, auto_unbox = TRUE, pretty = TRUE)
if (length(failed)) message("did not converge: ", paste(failed, collapse = "; "))
message(sprintf("wrote %s in %.1f s", OUTPUT, proc.time()[["elapsed"]] - started))
