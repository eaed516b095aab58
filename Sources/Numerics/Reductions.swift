/// Reductions, accumulated in `Double` (sums) so results do not depend on the split:
///
///     sum(x)     = Σ_i x_i
///     max(x)     = max_i x_i
///     l2Norm(x)  = √(Σ_i x_i²)
///     rowSums    r[i] = Σ_j x[i, j]       (x is rows × cols)
///     rowMax     r[i] = max_j x[i, j]
///     columnSums r[j] += Σ_i x[i, j]      (accumulates: the bias gradient of a Linear)
extension Kernels {
    /// Σ x (Double accumulation, partial sums per worker combined in a fixed order).
    public static func sum(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        partialSums(n) { r in
            var s = 0.0
            for i in r { s += Double(x[i]) }
            return s
        }
    }

    /// Σ x².
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        partialSums(n) { r in
            var s = 0.0
            for i in r { let v = Double(x[i]); s += v * v }
            return s
        }
    }

    /// √(Σ x²).
    public static func l2Norm(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        sumOfSquares(x, count: n).squareRoot()
    }

    /// max x (−∞ for an empty buffer; NaN if any element is NaN).
    public static func max(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<n {
            let v = x[i]
            if v.isNaN { return .nan }
            if v > m { m = v }
        }
        return m
    }

    /// `out[i] = Σ_j x[i, j]` for a rows × cols matrix.
    public static func rowSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(cols, 1))) { r in
            for i in r {
                let row = x + i * cols
                var s = 0.0
                for j in 0..<cols { s += Double(row[j]) }
                out[i] = Float(s)
            }
        }
    }

    /// `out[i] = max_j x[i, j]` for a rows × cols matrix.
    public static func rowMax(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(cols, 1))) { r in
            for i in r {
                let row = x + i * cols
                var m = -Float.infinity
                for j in 0..<cols where row[j] > m { m = row[j] }
                out[i] = m
            }
        }
    }

    /// `out[j] += Σ_i x[i, j]` for a rows × cols matrix (the bias gradient of a Linear).
    /// Parallel over column blocks; each column is summed in row order in `Double`.
    public static func accumulateColumnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                            into out: UnsafeMutablePointer<Float>) {
        let block = 64
        let blocks = (cols + block - 1) / block
        Parallel.forEach(blocks, grain: Swift.max(1, elementGrain / Swift.max(rows * block, 1))) { br in
            var acc = [Double](repeating: 0, count: block)
            for b in br {
                let j0 = b * block
                let w = Swift.min(block, cols - j0)
                for j in 0..<w { acc[j] = 0 }
                acc.withUnsafeMutableBufferPointer { a in
                    for i in 0..<rows {
                        let row = x + i * cols + j0
                        for j in 0..<w { a[j] += Double(row[j]) }
                    }
                }
                for j in 0..<w { out[j0 + j] += Float(acc[j]) }
            }
        }
    }

    // MARK: Tensor forms

    public static func sum(_ x: Tensor) -> Double { sum(x.data, count: x.count) }
    public static func l2Norm(_ x: Tensor) -> Double { l2Norm(x.data, count: x.count) }
    public static func max(_ x: Tensor) -> Float { max(x.data, count: x.count) }

    /// Sums `body(range)` over fixed chunks of `0..<n`, in chunk order (deterministic for a
    /// given thread count and `n`).
    static func partialSums(_ n: Int, _ body: (Range<Int>) -> Double) -> Double {
        let workers = Swift.max(1, Swift.min(Parallel.threads, n / elementGrain))
        if workers == 1 { return body(0..<n) }
        let chunk = (n + workers - 1) / workers
        let parts = UnsafeMutablePointer<Double>.allocate(capacity: workers)
        defer { parts.deallocate() }
        Parallel.forEach(workers) { wr in
            for w in wr {
                let lo = w * chunk, hi = Swift.min(n, lo + chunk)
                parts[w] = lo < hi ? body(lo..<hi) : 0
            }
        }
        var s = 0.0
        for w in 0..<workers { s += parts[w] }
        return s
    }
}
