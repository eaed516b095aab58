/// Wall-clock seconds of one training update by phase (or a sum of such), as the metrics
/// line's `step_s` and `split_s` report them.
struct PhaseTimings {
    /// Waiting for the batch loader.
    var data = 0.0
    var forward = 0.0
    /// Backward passes and the per-image gradient bookkeeping: the gradient phase less `forward`.
    var backward = 0.0
    /// Summing the slots' gradients across ranks.
    var allreduce = 0.0
    /// Clipping, the optimiser step and scattering the new values.
    var optimizer = 0.0
    /// The whole update.
    var total = 0.0

    static func += (a: inout PhaseTimings, b: PhaseTimings) {
        a.data += b.data; a.forward += b.forward; a.backward += b.backward
        a.allreduce += b.allreduce; a.optimizer += b.optimizer; a.total += b.total
    }
}

/// What one update that was taken (not skipped as non-finite) reports.
struct UpdateResult {
    var loss: Double
    var lr: Double
    /// The gradient norm before clipping (only with `train.grad_clip`).
    var gradNorm: Double?
    var timings: PhaseTimings
}

/// The updates since the last metrics line: their summed timings and loss, and their count.
struct LogWindow {
    var timings = PhaseTimings()
    var loss = 0.0
    var count = 0

    mutating func add(_ update: UpdateResult) {
        timings += update.timings
        loss += update.loss
        count += 1
    }
}
