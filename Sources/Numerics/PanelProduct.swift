import CPanelProduct
import Foundation

/// Our own matrix product, for ranks with many cores (`CAUSAL_TUNE_PRODUCTS=panels`).
///
/// OpenBLAS gives different last bits for a block of C when a product is split differently,
/// so with it the tiles must not depend on the thread count (`ProductTiling`), and every
/// extra tile repacks its operands: a wide partition costs ViT-L 25–40 % more CPU time. Here
/// the operands are packed once per product into panels that all tiles share
/// (`CPanelProduct`), and every element of C is one fused multiply-add chain over k in order
/// whatever the tile, kernel (AVX-512, AVX2, portable) or thread that computes it — so the
/// tiles are cut from the thread count (about eight per worker, for balance) and the bits
/// depend on none of thread count, partition width or SIMD width.
///
/// A product is two regions: the panels of A and B packed (items of ≈ 2^13 floats from a
/// counter: runs of short panels, or long ones in ranges of k), then the tiles of C (from a
/// counter). Inside another region or with one thread it runs inline on the calling
/// thread's own buffers.
///
/// Which products it runs is a function of the call alone (`BLAS.gemm`): products of at
/// least `ProductTiling.minimumMACs` multiply-adds. Products below that (a few µs) and those
/// a call site runs whole inside a region of its own (attention's per-head products,
/// `whole: true`) share no packed operand between workers and stay on `cblas_sgemm`, which
/// is faster per core: with one call per product their bits do not depend on the thread
/// count either.
public enum PanelProduct {
    /// The product kernel a run uses, from `CAUSAL_TUNE_PRODUCTS`.
    public enum Kernel: String, Sendable, CaseIterable {
        /// `cblas_sgemm` on tiles chosen by shape and partition width (the default).
        case openblas
        /// Our packed-panel kernel, tiles chosen by shape and thread count.
        case panels
    }

    // Set from the environment before the first product, or by tests between products.
    nonisolated(unsafe) private static var configured: Kernel = .openblas

    /// The product kernel in use.
    public static var kernel: Kernel {
        get { configured }
        set { configured = newValue }
    }

    /// Sets `kernel` from `CAUSAL_TUNE_PRODUCTS` when it is set; returns a one-line message
    /// (and leaves it alone) when the value is not a kernel's name.
    public static func configureFromEnvironment(_ environment: [String: String]) -> String? {
        guard let text = environment["CAUSAL_TUNE_PRODUCTS"] else { return nil }
        guard let k = Kernel(rawValue: text) else {
            return "CAUSAL_TUNE_PRODUCTS: '\(text)' is not one of \(Kernel.allCases.map(\.rawValue).joined(separator: ", "))"
        }
        configured = k
        return nil
    }

    /// The panel kernel this CPU runs, for reports ("AVX-512 12×32").
    public static var simdKernelName: String {
        switch ct_panel_kernel_kind() {
        case 2: return "AVX-512 \(ct_panel_mr())×\(ct_panel_nr())"
        case 1: return "AVX2 \(ct_panel_mr())×\(ct_panel_nr())"
        default: return "portable \(ct_panel_mr())×\(ct_panel_nr())"
        }
    }

    /// Tiles a parallel product aims at per worker: enough that a slow tile delays one
    /// worker's next tile rather than the region (ViT-L's model at 64 threads: products at
    /// 84 % with 4, 88 % with 8, packing included).
    static let tilesPerWorker = 8
    /// Floats a packing item aims at (≈ 10 µs of copying): panels of a short k are packed
    /// in runs, long ones in ranges of k.
    static let packingItemFloats = 1 << 13

    /// Whether `BLAS.gemm` runs a product of this shape here (when `kernel` is `.panels` and
    /// the call is not `whole`).
    @inline(__always)
    public static func runs(m: Int, n: Int, k: Int) -> Bool {
        ProductTiling.multiplyAdds(m: m, n: n, k: k) >= ProductTiling.minimumMACs
    }

    /// `C = alpha · op(A) · op(B) + beta · C` on the panel kernel, the arguments as
    /// `BLAS.gemm`'s (m, n, k ≥ 1), whatever the shape.
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let mr = Int(ct_panel_mr()), nr = Int(ct_panel_nr())
        let layout = PanelLayout(m: m, n: n, k: k)
        let (rowPanels, columnPanels) = (layout.rowPanels, layout.columnPanels)
        let aPanelFloats = mr * k, bPanelFloats = nr * k
        let packedA = PanelScratch.forCallingThread.floats(layout.floats), packedB = packedA + layout.bOffset
        let ta: Int32 = transposeA ? 1 : 0, tb: Int32 = transposeB ? 1 : 0

        let work = ProductTiling.multiplyAdds(m: m, n: n, k: k)
        let workers = Parallel.threads
        if workers <= 1 || Parallel.isInsideRegion || work < ProductTiling.minimumMACs {
            ct_panel_pack_a(ta, a, lda, 0, m, 0, k, k, packedA)
            ct_panel_pack_b(tb, b, ldb, 0, n, 0, k, k, packedB)
            ct_panel_multiply(packedA, packedB, m, n, k, alpha, beta, c, ldc)
            return
        }

        // Packing: A's items, then B's (runs of small panels, or large panels cut along k).
        let aItems = PackingItems(panels: rowPanels, panelFloats: aPanelFloats, k: k, target: packingItemFloats)
        let bItems = PackingItems(panels: columnPanels, panelFloats: bPanelFloats, k: k, target: packingItemFloats)
        Parallel.forEachDynamic(aItems.count + bItems.count, workers: workers) { item, _ in
            if item < aItems.count {
                let (panels, steps) = aItems.item(item)
                let r0 = panels.lowerBound * mr, r1 = Swift.min(m, panels.upperBound * mr)
                ct_panel_pack_a(ta, a, lda, r0, r1 - r0, steps.lowerBound, steps.upperBound, k,
                                packedA + panels.lowerBound * aPanelFloats)
            } else {
                let (panels, steps) = bItems.item(item - aItems.count)
                let c0 = panels.lowerBound * nr, c1 = Swift.min(n, panels.upperBound * nr)
                ct_panel_pack_b(tb, b, ldb, c0, c1 - c0, steps.lowerBound, steps.upperBound, k,
                                packedB + panels.lowerBound * bPanelFloats)
            }
        }

        // Tiles: about tilesPerWorker per worker, each ≥ minimumMACs; B's column panels are
        // divided first, then A's row panels (ViT's products have more column panels than
        // most machines have workers; the other order was not measured).
        let wanted = Swift.max(1, Swift.min(workers * tilesPerWorker, work / ProductTiling.minimumMACs))
        let columnTiles = Swift.min(columnPanels, wanted)
        let rowTiles = Swift.min(rowPanels, Swift.max(1, wanted / columnTiles))
        Parallel.forEachDynamic(rowTiles * columnTiles, workers: workers) { t, _ in
            let i = t / columnTiles, j = t % columnTiles
            let p0 = i * rowPanels / rowTiles, p1 = (i + 1) * rowPanels / rowTiles
            let q0 = j * columnPanels / columnTiles, q1 = (j + 1) * columnPanels / columnTiles
            let r0 = p0 * mr, r1 = Swift.min(m, p1 * mr)
            let c0 = q0 * nr, c1 = Swift.min(n, q1 * nr)
            if r0 >= r1 || c0 >= c1 { return }
            ct_panel_multiply(packedA + p0 * aPanelFloats, packedB + q0 * bPanelFloats,
                              r1 - r0, c1 - c0, k, alpha, beta, c + r0 * ldc + c0, ldc)
        }
    }
}

extension PanelProduct {
    /// GFLOP/s of the panel kernel alone on `m × n × k` with both operands already packed
    /// (as every tile of a parallel product finds them) on this thread
    /// (`ScalingModel.bestSeconds`). `bench --model-threads` prints it for one
    /// worker's share of a product, next to OpenBLAS's rates.
    public static func packedRate(m: Int, n: Int, k: Int) -> Double {
        let layout = PanelLayout(m: m, n: n, k: k)
        let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [n, k]), c = Tensor(zeros: [m, n])
        var rng = RandomGenerator(seed: 12)
        rng.fillUniform(a, -1, 1)
        rng.fillUniform(b, -1, 1)
        let panels = Tensor(zeros: [layout.floats])   // 64-byte aligned, as the kernels need
        let packed = panels.data
        ct_panel_pack_a(0, a.data, k, 0, m, 0, k, k, packed)
        ct_panel_pack_b(1, b.data, k, 0, n, 0, k, k, packed + layout.bOffset)
        let best = ScalingModel.bestSeconds {
            ct_panel_multiply(packed, packed + layout.bOffset, m, n, k, 1, 0, c.data, n)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }
}

/// The packing work of one operand: runs of whole panels when a panel is small, else each
/// panel cut into ranges of k (multiples of 16 steps, the AVX-512 packing's block).
struct PackingItems {
    let run: Int, stepsPerSlice: Int, slices: Int, count: Int
    let panels: Int, k: Int

    init(panels: Int, panelFloats: Int, k: Int, target: Int) {
        self.panels = panels
        self.k = k
        let wanted = Swift.min(panelFloats / Swift.max(target, 1), k / 16)
        if wanted >= 2 {
            run = 1
            stepsPerSlice = ((k + wanted - 1) / wanted + 15) / 16 * 16
            slices = (k + stepsPerSlice - 1) / stepsPerSlice
        } else {
            run = Swift.max(1, target / Swift.max(panelFloats, 1))
            stepsPerSlice = k
            slices = 1
        }
        count = (panels + run - 1) / run * slices
    }

    /// Item `i`'s panels and steps of k.
    func item(_ i: Int) -> (panels: Range<Int>, steps: Range<Int>) {
        let r = i / slices, s = i % slices
        let p0 = r * run, s0 = s * stepsPerSlice
        return (p0..<Swift.min(panels, p0 + run), s0..<Swift.min(k, s0 + stepsPerSlice))
    }
}

/// Where a product's packed panels lie in one buffer: A's ⌈m / MR⌉ panels of MR × k floats,
/// then B's ⌈n / NR⌉ panels of k × NR, starting on a 64-byte boundary (the AVX-512 kernel's
/// aligned loads of B).
struct PanelLayout {
    let rowPanels: Int, columnPanels: Int
    /// Floats before B's first panel, and in all.
    let bOffset: Int, floats: Int

    init(m: Int, n: Int, k: Int) {
        let mr = Int(ct_panel_mr()), nr = Int(ct_panel_nr())
        rowPanels = (m + mr - 1) / mr
        columnPanels = (n + nr - 1) / nr
        bOffset = (rowPanels * mr * k + 15) / 16 * 16
        floats = bOffset + columnPanels * nr * k
    }
}

/// One thread's packing buffer: grown to the largest product the thread packed, kept for
/// the thread's life (a product's panels are used by every worker, but owned by the thread
/// that called `gemm`; nested products on workers use the worker's own).
final class PanelScratch {
    /// 64-byte aligned `TensorStorage`, replaced only when a larger product comes.
    private var storage = TensorStorage(count: 0)

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<PanelScratch>.fromOpaque(pointer).release() }
        }
        return key
    }()

    static var forCallingThread: PanelScratch {
        if let p = pthread_getspecific(key) { return Unmanaged<PanelScratch>.fromOpaque(p).takeUnretainedValue() }
        let scratch = PanelScratch()
        pthread_setspecific(key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }

    /// At least `count` floats, 64-byte aligned; the contents are not kept across calls.
    func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > storage.count { storage = TensorStorage(count: count) }
        return storage.pointer
    }
}
