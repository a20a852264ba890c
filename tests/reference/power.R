# Reference numbers for lumbar's analytic sample size and power (src/lumbar/design/sample_size.py).
#
# Base R only (stats) and jsonlite. Each case states its inputs, the sample size
# per arm (solve = "n": the smallest whole number of analysed participants per
# reference arm reaching the target power) or the power at a given size
# (solve = "power"), computed three ways:
#   t      the t test without baseline adjustment. With two arms and equal
#          allocation: stats::power.t.test(strict = TRUE), both tails of the
#          noncentral t. With more arms (variance pooled over all arms, df = N - k)
#          or unequal allocation, the same noncentral t written out with pt().
#   borm   ANCOVA by Borm, Fransen & Lemmens (J Clin Epidemiol 2007;60:1234-8):
#          the t test with SD sd * sqrt(1 - rho^2), plus one participant per arm:
#          n = ceiling(power.t.test(..., sd = sd * sqrt(1 - rho^2))$n) + 1, and the
#          power at n is power.t.test(n = n - 1, sd = sd * sqrt(1 - rho^2))$power.
#   exact  ANCOVA with a normal baseline: conditional on the chance baseline
#          imbalance B ~ Beta(1/2, (N - k)/2), the t statistic is noncentral t on
#          N - k - 1 df with ncp * sqrt(1 - B); the power is integrated over B with
#          stats::integrate (substituting B = u^2, which removes the singularity at 0).
# "textbook" is the example most texts give: power.t.test(delta = 0.5, sd = 1,
# power = 0.8) gives n = 63.77, so 64 per arm.
#
# Run from the repository root:  Rscript tests/reference/power.R
# Writes tests/reference/power.json.

suppressPackageStartupMessages(library(jsonlite))

OUTPUT <- "tests/reference/power.json"

# Power of one comparison with nr analysed in the reference arm and nt in each
# of the k - 1 treatment arms.
t_power <- function(ncp, df, alpha, two_sided) {
  ncp <- abs(ncp)
  if (two_sided) {
    q <- qt(alpha / 2, df, lower.tail = FALSE)
    pt(q, df, ncp, lower.tail = FALSE) + pt(-q, df, ncp, lower.tail = TRUE)
  } else {
    pt(qt(alpha, df, lower.tail = FALSE), df, ncp, lower.tail = FALSE)
  }
}

case_power <- function(case, nr, nt) {
  k <- case$arms
  alpha <- if (case$multiplicity == "bonferroni") case$alpha / (k - 1) else case$alpha
  rho <- if (is.null(case$baseline_correlation)) 0 else case$baseline_correlation
  sd_e <- case$sd * sqrt(1 - rho^2)
  if (case$method == "borm") {
    nr <- nr - 1
    nt <- nt - 1
  }
  total <- nr + (k - 1) * nt
  ncp <- case$difference / (sd_e * sqrt(1 / nr + 1 / nt))
  if (case$method != "exact") {
    return(t_power(ncp, total - k, alpha, case$two_sided))
  }
  shape <- (total - k) / 2
  integrand <- function(u) {
    # B = u^2: E[g(B)] = integral of g(u^2) * 2 * (1 - u^2)^(shape - 1) / beta(1/2, shape)
    t_power(ncp * sqrt(1 - u^2), total - k - 1, alpha, case$two_sided) *
      2 * exp((shape - 1) * log1p(-u^2) - lbeta(0.5, shape))
  }
  integrate(integrand, 0, 1, rel.tol = 1e-12, abs.tol = 0, subdivisions = 1000L)$value
}

treatment_size <- function(case, nr) ceiling(case$allocation_ratio * nr - 1e-9)

solve_case <- function(case) {
  if (case$solve == "power") {
    nr <- case$n_per_arm
    case$n <- nr
    case$power <- case_power(case, nr, treatment_size(case, nr))
    if (case$method == "t" && case$arms == 2 && case$allocation_ratio == 1 &&
        case$multiplicity == "none") {
      case$power_t_test <- power.t.test(
        n = nr, delta = case$difference, sd = case$sd, sig.level = case$alpha,
        alternative = if (case$two_sided) "two.sided" else "one.sided", strict = TRUE)$power
    }
    return(case)
  }
  least <- if (case$method == "borm") 3 else 2
  nr <- least
  while (treatment_size(case, nr) < least) nr <- nr + 1
  while (case_power(case, nr, treatment_size(case, nr)) < case$target_power) nr <- nr + 1
  case$n <- nr
  case$power <- case_power(case, nr, treatment_size(case, nr))
  rho <- if (is.null(case$baseline_correlation)) 0 else case$baseline_correlation
  simple <- case$arms == 2 && case$allocation_ratio == 1 && case$multiplicity == "none"
  if (simple && case$method %in% c("t", "borm")) {
    # The same answer from power.t.test's own root: its n, rounded up (+ 1 for Borm).
    raw <- power.t.test(
      delta = case$difference, sd = case$sd * sqrt(1 - rho^2), sig.level = case$alpha,
      power = case$target_power, alternative = if (case$two_sided) "two.sided" else "one.sided",
      strict = TRUE, tol = 1e-10)$n
    case$n_raw <- raw
    case$n_power_t_test <- ceiling(raw) + if (case$method == "borm") 1 else 0
  }
  case
}

make_case <- function(id, solve, method, difference, sd, baseline_correlation = NULL,
                      alpha = 0.05, two_sided = TRUE, arms = 2, allocation_ratio = 1,
                      multiplicity = "none", target_power = NULL, n_per_arm = NULL) {
  list(id = id, solve = solve, method = method, difference = difference, sd = sd,
       baseline_correlation = baseline_correlation, alpha = alpha, two_sided = two_sided,
       arms = arms, allocation_ratio = allocation_ratio, multiplicity = multiplicity,
       target_power = target_power, n_per_arm = n_per_arm)
}

cases <- list(
  # The t test, as power.t.test.
  make_case("textbook", "n", "t", 0.5, 1, target_power = 0.8),
  make_case("rdq_t_80", "n", "t", 2, 5, target_power = 0.8),
  make_case("rdq_t_90", "n", "t", 2, 5, target_power = 0.9),
  make_case("one_sided", "n", "t", 0.5, 1, two_sided = FALSE, target_power = 0.8),
  make_case("alpha_0025", "n", "t", 2, 5, alpha = 0.025, target_power = 0.8),
  make_case("large_effect", "n", "t", 2, 1, target_power = 0.95),
  make_case("power_textbook_64", "power", "t", 0.5, 1, n_per_arm = 64),
  make_case("power_rdq_133", "power", "t", 2, 5, n_per_arm = 133),
  make_case("power_one_sided_10", "power", "t", 1, 1, two_sided = FALSE, n_per_arm = 10),
  make_case("power_small_5", "power", "t", 1, 2, n_per_arm = 5),
  make_case("power_negative_difference", "power", "t", -1.5, 2.3, n_per_arm = 40),
  # Several arms (variance pooled over all arms) and unequal allocation.
  make_case("three_arms_t", "n", "t", 2, 5, arms = 3, target_power = 0.8),
  make_case("three_arms_bonferroni", "n", "t", 2, 5, arms = 3, multiplicity = "bonferroni",
            target_power = 0.8),
  make_case("ratio_2_t", "n", "t", 2, 5, allocation_ratio = 2, target_power = 0.8),
  make_case("ratio_half_power", "power", "t", 2, 5, allocation_ratio = 0.5, n_per_arm = 120),
  make_case("three_arms_power", "power", "t", 1.5, 2.3, arms = 3, n_per_arm = 50),
  # ANCOVA: Borm et al.
  make_case("rdq_borm", "n", "borm", 2, 5, baseline_correlation = 0.55, target_power = 0.8),
  make_case("textbook_borm", "n", "borm", 0.5, 1, baseline_correlation = 0.3,
            target_power = 0.9),
  make_case("bother_borm", "n", "borm", 1.5, 2.3, baseline_correlation = 0.6,
            target_power = 0.8),
  make_case("rdq_borm_three_arms", "n", "borm", 2, 5, baseline_correlation = 0.55, arms = 3,
            target_power = 0.8),
  make_case("power_borm_71", "power", "borm", 2, 5, baseline_correlation = 0.55, n_per_arm = 71),
  # ANCOVA: exact.
  make_case("rdq_exact", "n", "exact", 2, 5, baseline_correlation = 0.55, target_power = 0.8),
  make_case("rdq_exact_three_arms", "n", "exact", 2, 5, baseline_correlation = 0.55, arms = 3,
            multiplicity = "bonferroni", target_power = 0.9),
  make_case("power_exact_71", "power", "exact", 2, 5, baseline_correlation = 0.55,
            n_per_arm = 71),
  make_case("power_exact_small", "power", "exact", 1, 1, baseline_correlation = 0.7,
            n_per_arm = 6),
  make_case("power_exact_ratio", "power", "exact", 2, 5, baseline_correlation = -0.4,
            allocation_ratio = 1.5, arms = 3, n_per_arm = 60, two_sided = FALSE),
  make_case("power_exact_large", "power", "exact", 0.2, 5, baseline_correlation = 0.5,
            n_per_arm = 5000)
)

textbook <- power.t.test(delta = 0.5, sd = 1, power = 0.8)
result <- list(
  description = paste(
    "Reference sample sizes and powers from R (base stats): the t test as power.t.test",
    "(strict = TRUE) or the same noncentral t with pt(); ANCOVA by Borm et al. 2007",
    "(t test with sd * sqrt(1 - rho^2), plus one per arm) and exactly (noncentral t",
    "averaged over the baseline imbalance, by integrate). n = analysed per reference arm."),
  script = "tests/reference/power.R",
  versions = list(R = R.version.string, stats = as.character(packageVersion("stats")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  textbook = list(call = "power.t.test(delta = 0.5, sd = 1, power = 0.8)",
                  n_raw = textbook$n, n = ceiling(textbook$n)),
  cases = lapply(cases, solve_case)
)
write_json(result, OUTPUT, digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null")
