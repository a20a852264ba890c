# The three reference datasets with the column mappings lumbar's tests use
# (tests/analysis/datasets.py). Sourced by tests/reference/*.R, run from the
# repository root. Every dataset comes back with the same columns:
#   id (participant), arm (factor, reference level first), visit (factor, in
#   time order), baseline, y (outcome), and its covariates;
# plus the names of its covariates, the arms and the visits.

reference_datasets <- function(root = "tests/reference/data") {
  path <- function(name) file.path(root, name)

  fev <- read.csv(path("fev_data.csv"), stringsAsFactors = FALSE)
  fev <- data.frame(
    id = fev$USUBJID,
    arm = factor(fev$ARMCD, levels = c("PBO", "TRT")),
    visit = factor(fev$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4")),
    baseline = fev$FEV1_BL,
    y = fev$FEV1,
    RACE = factor(fev$RACE),
    SEX = factor(fev$SEX),
    stringsAsFactors = FALSE
  )

  acu <- read.csv(path("acupuncture.csv"), stringsAsFactors = FALSE)
  stopifnot(all(acu$treat %in% c(1, 2)))
  acu <- data.frame(
    id = as.character(acu$id),
    arm = factor(ifelse(acu$treat == 1, "control", "acupuncture"),
                 levels = c("control", "acupuncture")),
    visit = factor(as.character(acu$time), levels = c("3", "12")),
    baseline = acu$head_base,
    y = acu$head,
    age = as.numeric(acu$age),
    sex = as.numeric(acu$sex),
    migraine = as.numeric(acu$migraine),
    chronicity = as.numeric(acu$chronicity),
    stringsAsFactors = FALSE
  )

  syn <- read.csv(path("synthetic_clbp.csv"), stringsAsFactors = FALSE)
  syn <- data.frame(
    id = syn$participant,
    arm = factor(syn$arm, levels = c("usual_care", "relaxation", "structural")),
    visit = factor(syn$visit, levels = c("week_10", "week_26", "week_52")),
    baseline = syn$rdq_baseline,
    y = syn$rdq,
    age = as.numeric(syn$age),
    sex = factor(syn$sex, levels = c("female", "male")),
    stringsAsFactors = FALSE
  )

  list(
    fev = list(
      file = "fev_data.csv", data = fev, covariates = c("RACE", "SEX"),
      mapping = list(outcome = "FEV1", participant = "USUBJID", arm = "ARMCD",
                     visit = "AVISIT", baseline = "FEV1_BL", covariates = c("RACE", "SEX"),
                     reference = "PBO")
    ),
    acupuncture = list(
      file = "acupuncture.csv", data = acu,
      covariates = c("age", "sex", "migraine", "chronicity"),
      mapping = list(outcome = "head", participant = "id",
                     arm = "treat (1 = control, 2 = acupuncture)", visit = "time",
                     baseline = "head_base",
                     covariates = c("age", "sex", "migraine", "chronicity"),
                     reference = "control")
    ),
    synthetic = list(
      file = "synthetic_clbp.csv", data = syn, covariates = c("age", "sex"),
      mapping = list(outcome = "rdq", participant = "participant", arm = "arm",
                     visit = "visit", baseline = "rdq_baseline", covariates = c("age", "sex"),
                     reference = "usual_care")
    )
  )
}

# Rows the models use: outcome, baseline and every covariate observed.
complete_rows <- function(dataset) {
  d <- dataset$data
  needed <- c("y", "baseline", dataset$covariates)
  d[stats::complete.cases(d[, needed]), , drop = FALSE]
}

# Versions of R and the packages that made the numbers.
reference_versions <- function(packages) {
  c(list(R = R.version.string),
    setNames(lapply(packages, function(p) as.character(utils::packageVersion(p))), packages))
}
