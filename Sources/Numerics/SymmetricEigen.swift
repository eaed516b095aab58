import CBLAS

/// Eigenpairs of real symmetric matrices (row-major `[Double]`, n × n; row- and column-major
/// coincide for a symmetric matrix) by LAPACK's `dsyevr` from the linked OpenBLAS.
public enum SymmetricEigen {
    /// The `k` largest eigenpairs, eigenvalues descending; `vectors[j]` is the unit
    /// eigenvector of `values[j]`, its sign as LAPACK returns it (callers that show vectors
    /// fix their own convention). A matrix with a non-finite entry, or one LAPACK fails on,
    /// gives NaN values and vectors — a crafted feature file yields a blank picture, not a trap.
    public static func top(_ k: Int, of matrix: [Double], n: Int) -> (values: [Double], vectors: [[Double]]) {
        precondition(k >= 1 && k <= n && matrix.count == n * n, "SymmetricEigen.top: k = \(k), n = \(n), \(matrix.count) entries")
        let failed = ([Double](repeating: .nan, count: k), [[Double]](repeating: [Double](repeating: .nan, count: n), count: k))
        guard matrix.allSatisfy({ $0.isFinite }) else { return failed }
        var a = matrix
        var size = blasint(n), lda = blasint(n), ldz = blasint(n)
        // RANGE = "I": only eigenvalues il…iu (ascending, 1-based) — the top k.
        var il = blasint(n - k + 1), iu = blasint(n)
        var vl = 0.0, vu = 0.0, abstol = 0.0
        var found: blasint = 0, info: blasint = 0
        var w = [Double](repeating: 0, count: n)
        var z = [Double](repeating: 0, count: n * k)
        var isuppz = [blasint](repeating: 0, count: 2 * k)
        func solve(_ work: inout [Double], _ lwork: blasint, _ iwork: inout [blasint], _ liwork: blasint) {
            var lw = lwork, liw = liwork
            dsyevr_("V", "I", "U", &size, &a, &lda, &vl, &vu, &il, &iu, &abstol, &found, &w, &z, &ldz, &isuppz,
                    &work, &lw, &iwork, &liw, &info, 1, 1, 1)
        }
        // A workspace query first (lwork = liwork = −1), then the solve.
        var work = [0.0], iwork: [blasint] = [0]
        solve(&work, -1, &iwork, -1)
        guard info == 0 else { return failed }
        let lwork = max(1, Int(work[0])), liwork = max(1, Int(iwork[0]))
        work = [Double](repeating: 0, count: lwork)
        iwork = [blasint](repeating: 0, count: liwork)
        solve(&work, blasint(lwork), &iwork, blasint(liwork))
        guard info == 0, Int(found) == k else { return failed }
        // Column j of Z (column-major, n × k) belongs to w[j], ascending.
        let order = (0..<k).reversed()
        return (order.map { w[$0] }, order.map { j in Array(z[(j * n)..<(j * n + n)]) })
    }

    /// All eigenpairs, eigenvalues descending.
    public static func all(of matrix: [Double], n: Int) -> (values: [Double], vectors: [[Double]]) {
        top(n, of: matrix, n: n)
    }
}
