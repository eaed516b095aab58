/// How a matrix product `C [m × n] = op(A) · op(B)` is cut into tiles: a function of the
/// shape `(m, n, k)` and the run's partition width `W` (`ProductTiling.width`), never of the
/// thread count.
///
/// Every tile is one single-threaded `cblas_sgemm` call on a block of rows × columns of C
/// with the full inner dimension. Which worker runs a tile, and how many workers there
/// are, then cannot change a single bit of C: the same calls run on the same data. This
/// matters because OpenBLAS does *not* give the same bits for a row of C when the product
/// is split differently — measured with its Haswell kernels, 1640 of 1904 (shape, transpose,
/// split) cases differed in some element (and 888 of 1000 splits of ViT shapes aligned to
/// its register tiles, column-only splits included); its SkylakeX kernels switch to other
/// code for small blocks (17 of those 1000). Products below `minimumMACs` are one tile.
///
///     tiles  = 1                                         if m·n·k < 2^19 or W = 1
///            = clamp(pow2⌊m·n·k / tileMACs(W)⌋, 2, W)   otherwise, then for W > 4 doubled
///              while ≤ W, ≥ 2^19 multiply-adds a tile and the grid's extra packing
///              (columnTiles − 1) / n + (rowTiles − 1) / m ≤ 1/512 (thin products: DCT)
///     grid   = rowTiles × columnTiles = tiles (powers of two), chosen to pack the least:
///              minimise columnTiles / n + rowTiles / m   (each tile packs its A rows and B columns)
///     rows per tile a multiple of 4, columns a multiple of 16 (OpenBLAS's register tiles).
///
/// Every extra tile repacks its operands inside OpenBLAS, so with few cores tiles are few
/// and large: with OpenBLAS's Haswell kernels a ViT-S/14 step with tiles of 2^22
/// multiply-adds was 26 % slower than with two halves per product (2^24: 20 %), and a ViT-L/16
/// step cut into up to 32 tiles per product took 12 % more CPU time. The default width, 4,
/// keeps 2–4 cores busy at a few per cent of extra packing. A rank with many cores raises the
/// width to its core count or a few times it (`CAUSAL_TUNE_PARTITION_WIDTH`, a power of two;
/// `BLAS.gemm` hands the tiles out from a counter, so extra tiles even out slow ones): tiles
/// then aim at 2^23 multiply-adds so that ViT-L's 1-GMAC products fill 64 workers or more, at
/// the price of more packing per step — `bench --model-threads` shows both. The bits depend on the width
/// as they depend on the BLAS kernel, so one run (and its resumption) keeps one width.
/// Products that always run one per worker inside a region (attention's per-head products)
/// are not tiled at all (`BLAS.gemm(whole: true)`).
public struct ProductTiling: Equatable, Sendable {
    public let rowTiles: Int
    public let columnTiles: Int
    public let rowsPerTile: Int
    public let columnsPerTile: Int

    /// Products smaller than this (m·n·k) are never cut.
    public static let minimumMACs = 1 << 19
    /// The default partition width (the most tiles a product is cut into).
    public static let defaultWidth = 4
    /// The largest partition width accepted.
    public static let maximumWidth = 1024

    // Set from the environment before the first product, or by tests between products.
    nonisolated(unsafe) private static var configuredWidth: Int = defaultWidth

    /// The partition width `W`: the most tiles a product is cut into (a power of two).
    public static var width: Int {
        get { configuredWidth }
        set {
            precondition(isValidWidth(newValue), "ProductTiling.width must be a power of two 1…\(maximumWidth), got \(newValue)")
            configuredWidth = newValue
        }
    }

    public static func isValidWidth(_ w: Int) -> Bool { w >= 1 && w <= maximumWidth && w & (w - 1) == 0 }

    /// The multiply-adds a tile aims at for a width: large tiles for a few cores, smaller ones
    /// (still ≥ 2^23, where one worker's share keeps most of the single-core rate) for many.
    public static func tileMACs(width: Int) -> Int { width <= defaultWidth ? 1 << 26 : 1 << 23 }

    /// Sets `width` from `CAUSAL_TUNE_PARTITION_WIDTH` when it is set; returns a one-line
    /// message (and leaves the width alone) when its value is not a valid width.
    public static func configureFromEnvironment(_ environment: [String: String]) -> String? {
        guard let text = environment["CAUSAL_TUNE_PARTITION_WIDTH"] else { return nil }
        guard let w = Int(text), isValidWidth(w) else {
            return "CAUSAL_TUNE_PARTITION_WIDTH: '\(text)' is not a power of two from 1 to \(maximumWidth)"
        }
        width = w
        return nil
    }

    /// m·n·k, or `Int.max` when that overflows: the size every cutting rule compares.
    public static func multiplyAdds(m: Int, n: Int, k: Int) -> Int {
        let (mn, o1) = m.multipliedReportingOverflow(by: n)
        let (mnk, o2) = mn.multipliedReportingOverflow(by: k)
        return o1 || o2 ? Int.max : mnk
    }

    public init(m: Int, n: Int, k: Int, width: Int = ProductTiling.width) {
        let work = ProductTiling.multiplyAdds(m: m, n: n, k: k)
        var tiles = 1
        if work >= ProductTiling.minimumMACs && width > 1 {
            let target = ProductTiling.tileMACs(width: width)
            tiles = 2
            while tiles < width && work / target >= 2 * tiles { tiles *= 2 }
            // Beyond the default width a product whose extra tiles would repack almost
            // nothing is cut further, down to `minimumMACs` a tile: the Causal-Tune layer's
            // DCT products (32 × 32768 × 32) split into column tiles repack only the 32 × 32
            // matrix, and at 4 tiles they held ViT-L's 64-thread model for 0.046 s a step.
            if width > ProductTiling.defaultWidth {
                while tiles < width && work / (2 * tiles) >= ProductTiling.minimumMACs,
                      let grid = ProductTiling.leastPackingGrid(tiles: 2 * tiles, m: m, n: n),
                      Double(grid.c - 1) / Double(n) + Double(grid.r - 1) / Double(m) <= ProductTiling.cheapExtraPacking {
                    tiles *= 2
                }
            }
        }
        var grid: (r: Int, c: Int)? = nil
        while grid == nil {
            grid = ProductTiling.leastPackingGrid(tiles: tiles, m: m, n: n)
            if grid == nil { tiles /= 2 }   // too thin to cut that often (tiles = 1 always fits)
        }
        let r = grid!.r, c = grid!.c
        rowsPerTile = ((m + r - 1) / r + 3) / 4 * 4
        columnsPerTile = ((n + c - 1) / c + 15) / 16 * 16
        // Rounding up can leave trailing tiles empty: count only those that hold something.
        rowTiles = Swift.max(1, (m + rowsPerTile - 1) / Swift.max(rowsPerTile, 1))
        columnTiles = Swift.max(1, (n + columnsPerTile - 1) / Swift.max(columnsPerTile, 1))
    }

    /// Extra packing per multiply-add, (columnTiles − 1) / n + (rowTiles − 1) / m floats, below
    /// which a wide partition cuts a product further than its multiply-adds alone would ask:
    /// ≈ 0.2 %, a few per cent of a product's time when packing a float costs ≈ 30× a
    /// multiply-add at the kernel's rate.
    static let cheapExtraPacking = 1.0 / 512

    /// The rows × columns grid of `tiles` tiles (powers of two) that packs the least —
    /// minimising columnTiles / n + rowTiles / m, since each tile packs its rows of A and its
    /// columns of B — with at least 4 rows and 16 columns a tile; nil when none fits.
    static func leastPackingGrid(tiles: Int, m: Int, n: Int) -> (r: Int, c: Int)? {
        let maxRowTiles = Swift.max(1, m / 4), maxColumnTiles = Swift.max(1, n / 16)
        var best: (r: Int, c: Int, cost: Double)? = nil
        var r = 1
        while r <= tiles {
            let c = tiles / r
            if r <= maxRowTiles && c <= maxColumnTiles {
                let cost = Double(c) / Double(Swift.max(n, 1)) + Double(r) / Double(Swift.max(m, 1))
                if best == nil || cost < best!.cost { best = (r, c, cost) }
            }
            r *= 2
        }
        return best.map { ($0.r, $0.c) }
    }

    public var count: Int { rowTiles * columnTiles }

    /// One tile (the whole product).
    public static let single = ProductTiling(rowTiles: 1, columnTiles: 1, rowsPerTile: Int.max / 2, columnsPerTile: Int.max / 2)

    private init(rowTiles: Int, columnTiles: Int, rowsPerTile: Int, columnsPerTile: Int) {
        self.rowTiles = rowTiles; self.columnTiles = columnTiles
        self.rowsPerTile = rowsPerTile; self.columnsPerTile = columnsPerTile
    }

    /// Rows and columns of C that tile `t` covers (row-major tile order).
    @inline(__always)
    public func tile(_ t: Int, m: Int, n: Int) -> (rows: Range<Int>, columns: Range<Int>) {
        let i = t / columnTiles, j = t % columnTiles
        let r0 = i * rowsPerTile, c0 = j * columnsPerTile
        return (r0..<Swift.min(m, r0 + rowsPerTile), c0..<Swift.min(n, c0 + columnsPerTile))
    }
}
