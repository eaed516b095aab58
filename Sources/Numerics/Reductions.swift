/// Reductions, accumulated in `Double` (sums) over chunks whose size does not depend on the
/// thread count, so results are bit-identical however many workers run them:
///
///     sum(x)     = Σ_i x_i
///     max(x)     = max_i x_i
///     l2Norm(x)  = √(Σ_i x_i²)
///     dot(a, b)  = Σ_i a_i b_i
///     rowSums    r[i] = Σ_j x[i, j]       (x is rows × cols)
///     rowMax     r[i] = max_j x[i, j]
///     columnSums r[j] += Σ_i x[i, j]      (accumulates: the bias gradient of a Linear)
extension Kernels {
    /// Σ x (Double accumulation, partial sums per fixed chunk combined in chunk order).
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

    /// Σ a·b (products and sums in `Double`).
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Double {
        partialSums(n) { r in
            var s = 0.0
            for i in r { s += Double(a[i]) * Double(b[i]) }
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

    /// The chunk a reduction sums on its own before the chunks are combined — a constant,
    /// so a sum's value does not depend on the thread count.
    public static let reductionChunk = 1 << 14

    /// Sums `body(range)` over chunks of `reductionChunk` elements of `0..<n`, combined in
    /// chunk order: the same bits for any thread count.
    static func partialSums(_ n: Int, _ body: (Range<Int>) -> Double) -> Double {
        let chunks = (n + reductionChunk - 1) / reductionChunk
        if chunks <= 1 { return n > 0 ? body(0..<n) : 0 }
        let parts = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
        defer { parts.deallocate() }
        Parallel.forEach(chunks, grain: Swift.max(1, elementGrain / reductionChunk)) { cr in
            for ch in cr {
                let lo = ch * reductionChunk
                parts[ch] = body(lo..<Swift.min(n, lo + reductionChunk))
            }
        }
        var s = 0.0
        for ch in 0..<chunks { s += parts[ch] }
        return s
    }
}
