/// Matrix transpose of a rows × cols buffer (optionally many of them stacked):
///
///     dst[j, i] = src[i, j]          src [rows, cols] → dst [cols, rows]
///
/// The layout change between token-major `[B, T, C]` and channel-major `[B, C, h, w]` maps
/// (feature dumps, spectral transforms, heads). Blocked in 32 × 32 tiles so both sides
/// stream through cache; batches run in parallel.
extension Kernels {
    /// Transposes `batch` consecutive rows × cols matrices of `src` into `dst` (no aliasing).
    public static func transpose(_ src: UnsafePointer<Float>, rows: Int, cols: Int,
                                 into dst: UnsafeMutablePointer<Float>, batch: Int = 1) {
        let tile = 32
        let rowTiles = (rows + tile - 1) / tile
        Parallel.forEach(batch * rowTiles, grain: Swift.max(1, elementGrain / Swift.max(tile * cols, 1))) { r in
            for task in r {
                let b = task / rowTiles, i0 = (task % rowTiles) * tile
                let s = src + b * rows * cols, d = dst + b * rows * cols
                let i1 = Swift.min(rows, i0 + tile)
                var j0 = 0
                while j0 < cols {
                    let j1 = Swift.min(cols, j0 + tile)
                    for i in i0..<i1 {
                        let srow = s + i * cols
                        for j in j0..<j1 { d[j * rows + i] = srow[j] }
                    }
                    j0 = j1
                }
            }
        }
    }

    /// `[..., rows, cols]` → `[..., cols, rows]` for the last two dimensions of `src`.
    public static func transposeLastTwo(_ src: Tensor, into dst: Tensor) {
        precondition(src.rank >= 2 && dst.count == src.count, "transpose: \(src.shape) into \(dst.shape)")
        let rows = src.shape[src.rank - 2], cols = src.shape[src.rank - 1]
        precondition(dst.shape.suffix(2) == [cols, rows], "transpose: \(src.shape) into \(dst.shape)")
        transpose(src.data, rows: rows, cols: cols, into: dst.data, batch: src.count / Swift.max(rows * cols, 1))
    }
}
