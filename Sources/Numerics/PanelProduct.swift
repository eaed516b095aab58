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
        let macs = m.multipliedReportingOverflow(by: n).partialValue.multipliedReportingOverflow(by: k)
        return macs.overflow || macs.partialValue >= ProductTiling.minimumMACs
    }

    /// `C = alpha · op(A) · op(B) + beta · C` on the panel kernel, the arguments as
    /// `BLAS.gemm`'s (m, n, k ≥ 1), whatever the shape.
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let mr = Int(ct_panel_mr()), nr = Int(ct_panel_nr())
        let rowPanels = (m + mr - 1) / mr, columnPanels = (n + nr - 1) / nr
        let aPanelFloats = mr * k, bPanelFloats = nr * k
        // B's panels start on a 64-byte boundary (the AVX-512 kernel's aligned loads).
        let aFloats = (rowPanels * aPanelFloats + 15) / 16 * 16
        let buffer = PanelScratch.forCallingThread.floats(aFloats + columnPanels * bPanelFloats)
        let packedA = buffer, packedB = buffer + aFloats
        let ta: Int32 = transposeA ? 1 : 0, tb: Int32 = transposeB ? 1 : 0

        let macs = m.multipliedReportingOverflow(by: n).partialValue.multipliedReportingOverflow(by: k)
        let work = macs.overflow ? Int.max : macs.partialValue
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
    /// (as every tile of a parallel product finds them) on this thread: the best of at least
    /// 3 calls and 0.2 s, by the thread's CPU clock. `bench --model-threads` prints it for one
    /// worker's share of a product, next to OpenBLAS's rates.
    public static func packedRate(m: Int, n: Int, k: Int) -> Double {
        let mr = Int(ct_panel_mr()), nr = Int(ct_panel_nr())
        let aFloats = ((m + mr - 1) / mr * mr * k + 15) / 16 * 16
        let bFloats = (n + nr - 1) / nr * nr * k
        let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [n, k]), c = Tensor(zeros: [m, n])
        var rng = RandomGenerator(seed: 12)
        rng.fillUniform(a, -1, 1)
        rng.fillUniform(b, -1, 1)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, (aFloats + bFloats) * MemoryLayout<Float>.stride) == 0, let raw else { return 0 }
        defer { free(raw) }
        let packed = raw.assumingMemoryBound(to: Float.self)
        ct_panel_pack_a(0, a.data, k, 0, m, 0, k, k, packed)
        ct_panel_pack_b(1, b.data, k, 0, n, 0, k, k, packed + aFloats)
        var best = Double.infinity, spent = 0.0, calls = 0
        while calls < 3 || spent < 0.2 {
            let t0 = ScalingModel.threadCPUSeconds()
            ct_panel_multiply(packed, packed + aFloats, m, n, k, 1, 0, c.data, n)
            let dt = ScalingModel.threadCPUSeconds() - t0
            best = Swift.min(best, dt)
            spent += dt
            calls += 1
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

/// One thread's packing buffer: grown to the largest product the thread packed, kept for
/// the thread's life (a product's panels are used by every worker, but owned by the thread
/// that called `gemm`; nested products on workers use the worker's own).
final class PanelScratch {
    private var base: UnsafeMutableRawPointer?
    private var capacity = 0   // floats

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
        if count > capacity {
            free(base)
            var p: UnsafeMutableRawPointer?
            let bytes = Swift.max(count, 16) * MemoryLayout<Float>.stride
            guard posix_memalign(&p, 64, bytes) == 0, let q = p else {
                fatalError("PanelProduct: cannot allocate \(bytes) bytes for packed panels")
            }
            base = q
            capacity = Swift.max(count, 16)
        }
        return base!.assumingMemoryBound(to: Float.self)
    }

    deinit { free(base) }
}
