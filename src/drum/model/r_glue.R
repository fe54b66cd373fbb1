# drum's side of the R bridge (drum.model.r_bridge): loads custom.R and an .rds artifact, reads payloads,
# calls the hooks with DRUM 1.18.1's R signatures and checks what they return. Everything lives in the
# environment `.drum`; the user's custom.R is sourced into its own environment `.drum$hooks_env`.

.drum <- new.env()

.drum$hook_names <- function(target_type) {
  if (target_type == "unstructured") {
    c("init", "load_model", "score_unstructured")
  } else {
    c("init", "read_input_data", "load_model", "transform", "score", "post_process", "fit")
  }
}

# Source custom.R (or custom.r) into a fresh environment; the hooks are its functions.
.drum$init <- function(code_dir, target_type, custom_file) {
  env <- new.env(parent = globalenv())
  .drum$hooks_env <- env
  .drum$hooks <- list()
  if (!is.null(custom_file)) {
    sys.source(custom_file, envir = env, keep.source = TRUE)
    for (name in .drum$hook_names(target_type)) {
      fn <- get0(name, envir = env, mode = "function", inherits = FALSE)
      if (!is.null(fn)) .drum$hooks[[name]] <- fn
    }
  }
  if (!is.null(.drum$hooks$init)) .drum$hooks$init(code_dir = code_dir)
  as.character(names(.drum$hooks))
}

.drum$has <- function(name) !is.null(.drum$hooks[[name]])

.drum$load_model <- function(code_dir, target_type) {
  if (.drum$has("load_model")) {
    model <- .drum$hooks$load_model(code_dir)
    if (!is.null(model)) return(model)
  }
  files <- dir(code_dir, pattern = "\\.rds$", ignore.case = TRUE)
  if (length(files) == 0) {
    if (target_type == "transform") return(NULL)
    stop(paste0("\n\nRunning environment language: R.\nCould not find a serialized model artifact with .rds ",
                "extension, supported by default R predictor. If your artifact is not supported by default ",
                "predictor, implement custom.load_model hook."), call. = FALSE)
  }
  if (length(files) > 1) {
    stop(sprintf(paste0("\n\nRunning environment language: R.\nMultiple serialized model artifacts found: [%s] ",
                        "in %s. Remove extra artifacts or overwrite custom.load_model"),
                 paste(files, collapse = " "), code_dir), call. = FALSE)
  }
  path <- file.path(code_dir, files[[1]])
  tryCatch(readRDS(path), error = function(e) {
    stop(sprintf("\n\nRunning environment language: R.\nCould not load searialized model artifact: %s", path),
         call. = FALSE)
  })
}

.drum$load_model_into_session <- function(code_dir, target_type) {
  .drum$model <- .drum$load_model(code_dir, target_type)
  TRUE
}

# A payload as the model's input: read_input_data(raw), else Matrix Market or CSV parsed by R as DRUM does.
.drum$read <- function(data, mimetype, sparse_colnames, use_hook = TRUE) {
  if (use_hook && .drum$has("read_input_data")) return(.drum$hooks$read_input_data(data))
  if (!is.null(mimetype) && mimetype == "text/mtx") {
    path <- tempfile(fileext = ".mtx")
    on.exit(unlink(path))
    writeBin(data, path)
    matrix <- Matrix::readMM(path)
    if (!is.null(sparse_colnames)) colnames(matrix) <- sparse_colnames
    return(matrix)
  }
  text <- gsub("\r", "", rawToChar(data), fixed = TRUE)
  Encoding(text) <- "UTF-8"
  frame <- read.csv(text = text, check.names = FALSE)
  if (ncol(frame) == 1) frame <- read.csv(text = text, check.names = FALSE, blank.lines.skip = FALSE)
  frame
}

.drum$frame <- function(x, what) {
  if (!is.data.frame(x)) stop(sprintf("%s must be of a data.frame type, received %s", what, typeof(x)), call. = FALSE)
  x
}

# The model's own predict(): S3 methods defined in custom.R are found (the call is evaluated in an
# environment under custom.R's), and caret's methods when caret is installed (DRUM always loaded caret).
.drum$default_predict <- function(data, model, target_type) {
  if (!isTRUE(.drum$caret_tried)) {
    .drum$caret_tried <- TRUE
    if (requireNamespace("caret", quietly = TRUE)) invisible(NULL)
  }
  env <- new.env(parent = .drum$hooks_env)
  env$model <- model
  env$data <- data
  if (target_type %in% c("binary", "multiclass")) {
    return(data.frame(eval(quote(stats::predict(model, data, type = "prob")), env)))
  }
  if (target_type %in% c("regression", "anomaly")) {
    predictions <- data.frame(eval(quote(stats::predict(model, data)), env))
    names(predictions) <- "Predictions"
    return(predictions)
  }
  stop(sprintf("Target type '%s' is not supported by R predictor", target_type), call. = FALSE)
}

# Structured predictions: read, transform, score (or the model's predict), post_process.
.drum$predict <- function(data, mimetype, sparse_colnames, target_type, positive, negative, labels) {
  model <- .drum$model
  data <- .drum$read(data, mimetype, sparse_colnames)
  if (.drum$has("transform")) data <- .drum$hooks$transform(data, model)
  if (.drum$has("score")) {
    kwargs <- list(positive_class_label = positive, negative_class_label = negative, class_labels = labels)
    predictions <- do.call(.drum$hooks$score, list(data, model, kwargs))
  } else {
    predictions <- .drum$default_predict(data, model, target_type)
  }
  if (.drum$has("post_process")) predictions <- .drum$hooks$post_process(predictions, model)
  .drum$frame(predictions, "predictions")
  # All-numeric predictions cross as one double vector (column-major) and their names: converting a
  # data.frame to pandas costs far more than the prediction of a few rows.
  if (all(vapply(predictions, is.numeric, TRUE))) {
    return(list("numeric", names(predictions), as.double(unlist(predictions, use.names = FALSE)), nrow(predictions)))
  }
  list("frame", predictions)
}

# Transform target type: list(X as a data.frame, or a sparse matrix as (i, j, x) triplets, and its column names).
.drum$transform <- function(data, mimetype, sparse_colnames, target) {
  model <- .drum$model
  x <- .drum$read(data, mimetype, sparse_colnames)
  y <- if (is.null(target)) NULL else .drum$read(target, NULL, NULL, use_hook = FALSE)
  if (.drum$has("transform")) {
    out <- .drum$hooks$transform(x, model, y)
  } else {
    out <- recipes::bake(model, x)
  }
  if (is.list(out) && !is.data.frame(out)) {
    if (length(out) > 1 && !is.null(out[[2]])) {
      stop("Transformation of the target variable is not supported by DRUM.", call. = FALSE)
    }
    out <- out[[1]]
  }
  if (inherits(out, "sparseMatrix")) {
    triplets <- Matrix::summary(methods::as(out, "TsparseMatrix"))
    if (nrow(out) != nrow(x)) .drum$row_mismatch(x, out)
    return(list(sparse = TRUE, i = triplets$i, j = triplets$j, x = triplets$x, nrow = nrow(out),
                ncol = ncol(out), colnames = colnames(out)))
  }
  out <- .drum$frame(out, "Transformed X")
  if (nrow(out) != nrow(x)) .drum$row_mismatch(x, out)
  if (ncol(out) == 0) stop("Number of transform output cols is 0. Must be > 0.", call. = FALSE)
  list(sparse = FALSE, frame = out)
}

.drum$row_mismatch <- function(x, out) {
  stop(sprintf("Number of input rows (%d) does not match number of transform output rows (%d)", nrow(x), nrow(out)),
       call. = FALSE)
}

.drum$unstructured <- function(data, kwargs) {
  result <- do.call(.drum$hooks$score_unstructured, c(list(.drum$model, data), kwargs))
  if (!is.list(result)) {
    if (!is.null(result) && !is.character(result) && !is.raw(result)) {
      stop(sprintf("In unstructured mode single return value can be of type character/raw, but received %s",
                   typeof(result)), call. = FALSE)
    }
    return(list(result, NULL))
  }
  if (length(result) != 2) {
    stop(sprintf("In unstructured mode predictions of type list must have length = 2, but received length = %s",
                 length(result)), call. = FALSE)
  }
  ok_data <- is.null(result[[1]]) || is.character(result[[1]]) || is.raw(result[[1]])
  if (!ok_data || !(is.null(result[[2]]) || is.list(result[[2]]))) {
    stop(sprintf("In unstructured mode list return value must be of type (character/raw, list) but received (%s, %s)",
                 typeof(result[[1]]), typeof(result[[2]])), call. = FALSE)
  }
  result
}

.drum$fit <- function(X, y, output_dir, class_order, row_weights, parameters, target_type) {
  if (.drum$has("transform") && target_type != "transform") X <- .drum$hooks$transform(X, NULL)
  if (!.drum$has("fit")) stop("No Fit method provided.", call. = FALSE)
  do.call(.drum$hooks$fit, list(X = X, y = y, output_dir = output_dir, row_weights = row_weights,
                                class_order = class_order, parameters = parameters))
  invisible(NULL)
}

.drum$traceback <- function() paste(utils::capture.output(traceback(max.lines = 3)), collapse = "\n")
