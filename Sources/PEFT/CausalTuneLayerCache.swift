import Numerics

/// What one layer's forward of `CausalTuneAdapter` keeps for its backward (names as in the
/// layer's equations).
final class CausalTuneLayerCache {
    var rows = 0
    /// `Q = M ⊙ T(X)`, `[B·N, C]`.
    var masked = Tensor(zeros: [0])
    /// `S`, the softmax weights over the tokens, `[B·N, m]`.
    var attention = Tensor(zeros: [0])
    /// `Z = ΔF + Q`, `[B·N, C]`.
    var mixed = Tensor(zeros: [0])
    /// `R = f_d(Z)`, `[B·N, C]`.
    var projected = Tensor(zeros: [0])
    /// `T_i` (materialised `A_i B_i` for low rank), `[m, C]`.
    var keys: Tensor
    /// `V = f_t(T_i[1:])`, `[m−1, C]`.
    var values: Tensor
    var valid = false
    /// The layer whose forward filled it; a backward of another layer is a bug.
    var layer = -1

    init(m: Int, c: Int) {
        keys = Tensor(zeros: [m, c])
        values = Tensor(zeros: [Swift.max(m - 1, 0), c])
    }

    /// Sizes the per-row arrays for `rows = B·N` (kept when the batch shape repeats).
    func allocate(rows: Int, channels c: Int, tokens m: Int) {
        if self.rows == rows { return }
        masked = Tensor(zeros: [rows, c])
        attention = Tensor(zeros: [rows, m])
        mixed = Tensor(zeros: [rows, c])
        projected = Tensor(zeros: [rows, c])
        self.rows = rows
    }

    /// Frees the per-row arrays; the next forward allocates them again.
    func release() {
        rows = 0
        masked = Tensor(zeros: [0])
        attention = Tensor(zeros: [0])
        mixed = Tensor(zeros: [0])
        projected = Tensor(zeros: [0])
        valid = false
    }
}
