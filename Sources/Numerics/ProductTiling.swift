/// How a matrix product `C [m × n] = op(A) · op(B)` is cut into tiles: a function of the
/// shape `(m, n, k)` alone, never of the thread count.
///
/// Every tile is one single-threaded `cblas_sgemm` call on a block of rows × columns of C
/// with the full inner dimension. Which worker runs a tile, and how many workers there
/// are, then cannot change a single bit of C: the same calls run on the same data. This
/// matters because OpenBLAS does *not* give the same bits for a row of C when the product
/// is split differently — measured with its Haswell kernels, 1640 of 1904 (shape, transpose,
/// split) cases differed in some element — and its SkylakeX kernels switch to other code for
/// small blocks. Products
/// below `minimumMACs` are one tile.
///
///     tiles  = 1                                      if m·n·k < 2^19
///            = clamp(pow2⌊m·n·k / 2^22⌋, 2, 32)      otherwise
///     grid   = rowTiles × columnTiles = tiles (powers of two), chosen to pack the least:
///              minimise columnTiles / n + rowTiles / m   (each tile packs its A rows and B columns)
///     rows per tile a multiple of 4, columns a multiple of 16 (OpenBLAS's register tiles).
///
/// 2^22 multiply-adds (≈ 0.1 ms on one core) keeps the per-call overhead and the extra
/// packing small while giving the large products of a ViT step 16–32 tiles to spread over
/// the cores.
public struct ProductTiling: Equatable, Sendable {
    public let rowTiles: Int
    public let columnTiles: Int
    public let rowsPerTile: Int
    public let columnsPerTile: Int

    /// Products smaller than this (m·n·k) are never cut.
    public static let minimumMACs = 1 << 19
    /// The multiply-adds a tile aims at.
    public static let tileMACs = 1 << 22
    /// The most tiles a product is cut into.
    public static let maximumTiles = 32

    public init(m: Int, n: Int, k: Int) {
        let macs = m.multipliedReportingOverflow(by: n).partialValue.multipliedReportingOverflow(by: k)
        let work = macs.overflow ? Int.max : macs.partialValue
        var tiles = 1
        if work >= ProductTiling.minimumMACs {
            tiles = 2
            while tiles < ProductTiling.maximumTiles && work / ProductTiling.tileMACs >= 2 * tiles { tiles *= 2 }
        }
        let maxRowTiles = Swift.max(1, m / 4), maxColumnTiles = Swift.max(1, n / 16)
        var best: (r: Int, c: Int, cost: Double)? = nil
        while best == nil {
            var r = 1
            while r <= tiles {
                let c = tiles / r
                if r <= maxRowTiles && c <= maxColumnTiles {
                    let cost = Double(c) / Double(Swift.max(n, 1)) + Double(r) / Double(Swift.max(m, 1))
                    if best == nil || cost < best!.cost { best = (r, c, cost) }
                }
                r *= 2
            }
            if best == nil { tiles /= 2 }   // too thin to cut that often (tiles = 1 always fits)
        }
        let r = best!.r, c = best!.c
        rowsPerTile = ((m + r - 1) / r + 3) / 4 * 4
        columnsPerTile = ((n + c - 1) / c + 15) / 16 * 16
        // Rounding up can leave trailing tiles empty: count only those that hold something.
        rowTiles = Swift.max(1, (m + rowsPerTile - 1) / Swift.max(rowsPerTile, 1))
        columnTiles = Swift.max(1, (n + columnsPerTile - 1) / Swift.max(columnsPerTile, 1))
    }

    public var count: Int { rowTiles * columnTiles }

    /// Rows and columns of C that tile `t` covers (row-major tile order).
    @inline(__always)
    public func tile(_ t: Int, m: Int, n: Int) -> (rows: Range<Int>, columns: Range<Int>) {
        let i = t / columnTiles, j = t % columnTiles
        let r0 = i * rowsPerTile, c0 = j * columnsPerTile
        return (r0..<Swift.min(m, r0 + rowsPerTile), c0..<Swift.min(n, c0 + columnsPerTile))
    }
}
