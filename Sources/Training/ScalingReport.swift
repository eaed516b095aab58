import Backbone
import Core
import Foundation
import Numerics

/// `causal-tune bench --model-threads`: the scaling model of the training step
/// (`Numerics/ScalingModel.swift`) at the modelled thread counts, next to the step measured
/// at 1, 2, 4 … up to the configured threads.
///
///     one-thread s   the modelled step's CPU time on one core (every part run in turn),
///                    less the model's own clock reads between parts
///     predicted s    time outside regions + Σ over regions of the largest part at T
///     efficiency     one-thread s / (T × predicted s)        (measured: t₁ / (T × t_T))
///
/// Per kind of region (the call site's module and file, `kind(ofSite:)`) the same three
/// figures; the work outside regions is a kind of its own, serial at every T.
public struct ScalingReport: Sendable {
    /// The kinds of region, in report order, with their labels.
    public static let kinds: [(key: String, label: String)] = [
        ("products", "products (BLAS tiles)"), ("attention", "attention pairs"),
        ("causal_tune", "Causal-Tune layer"), ("kernels", "elementwise/norm"), ("head", "head"),
        ("optimizer", "optimizer"), ("other", "other (data, comm)"), ("outside_regions", "outside regions"),
    ]

    /// The kind of a region from its call site's `#fileID` ("Module/File.swift").
    public static func kind(ofSite file: String) -> String {
        let module = file.split(separator: "/").first.map(String.init) ?? ""
        switch (module, file) {
        case (_, "Numerics/BLAS.swift"), (_, "Numerics/PanelProduct.swift"): return "products"
        case (_, "Layers/Attention.swift"): return "attention"
        case ("PEFT", _): return "causal_tune"
        case ("Heads", _): return "head"
        case (_, "Training/Optimizer.swift"): return "optimizer"
        case ("Numerics", _), ("Layers", _), ("Backbone", _): return "kernels"
        default: return "other"
        }
    }

    public struct Kind: Sendable {
        public var key: String
        public var regions: Int
        public var oneThreadSeconds: Double
        public var predictedSeconds: Double
    }

    public struct ModelRun: Sendable {
        public var threads: Int
        public var steps: Int
        /// Medians over the modelled steps.
        public var oneThreadSeconds: Double
        public var predictedSeconds: Double
        public var kinds: [Kind]                 // `ScalingReport.kinds` order, every kind
        public var sites: [ScalingModel.Site]    // of the last modelled step
        public var efficiency: Double { oneThreadSeconds / (Double(threads) * predictedSeconds) }
    }

    public struct MeasuredRun: Sendable {
        public var threads: Int
        public var stepSeconds: Double           // median
    }

    /// One worker's share of a product split T ways, timed alone on one core.
    public struct ShareRate: Sendable {
        public var threads: Int
        public var rows: Int, rowsGFLOPs: Double        // split by rows of C: ⌈m / T⌉ × n
        public var columns: Int, columnsGFLOPs: Double  // split by columns: m × ⌈n / T⌉
        /// The same columns on our panel kernel, operands packed beforehand (once per
        /// product, shared by the workers): what a worker's tiles run at with panels.
        public var panelColumnsGFLOPs: Double
    }

    public var model: [ModelRun]                 // ascending threads
    public var measured: [MeasuredRun]           // ascending threads, 1 first
    /// The backbone's fc1 forward product (`fc1Shape`: m × n × k, B stored n × k) and one
    /// worker's share of it at each modelled T (and T = 1): the input a partition chooser
    /// needs.
    public var fc1Shape: (m: Int, n: Int, k: Int) = (0, 0, 0)
    public var fc1Shares: [ShareRate] = []
    /// The 1-minute load average (`/proc/loadavg`) before and after: the measured figures
    /// move with the machine's other load, the model's much less.
    public var loadAverage: (before: Double, after: Double) = (0, 0)

    static func currentLoadAverage() -> Double {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .flatMap { $0.split(separator: " ").first.flatMap { Double($0) } } ?? 0
    }

    /// GFLOP/s of one `cblas_sgemm` call `m × n × k` (B stored n × k, as `Linear` keeps its
    /// weight) on this thread (`ScalingModel.bestSeconds`).
    public static func sgemmRate(m: Int, n: Int, k: Int) -> Double {
        let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [n, k]), c = Tensor(zeros: [m, n])
        var rng = RandomGenerator(seed: 11)
        rng.fillUniform(a, -1, 1)
        rng.fillUniform(b, -1, 1)
        let best = ScalingModel.bestSeconds {
            BLAS.gemm(transposeA: false, transposeB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k,
                      c: c.data, ldc: n, whole: true)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }

    /// One worker's share of `m × n × k` at each T, by rows and by columns (`sgemmRate`).
    public static func shareRates(m: Int, n: Int, k: Int, threads: [Int]) -> [ShareRate] {
        threads.map { t in
            let rows = (m + t - 1) / t, columns = (n + t - 1) / t
            return ShareRate(threads: t, rows: rows, rowsGFLOPs: sgemmRate(m: rows, n: n, k: k),
                             columns: columns, columnsGFLOPs: sgemmRate(m: m, n: columns, k: k),
                             panelColumnsGFLOPs: PanelProduct.packedRate(m: m, n: columns, k: k))
        }
    }

    /// Figures of one modelled step from its sites and wall time, by kind.
    static func kindFigures(sites: [ScalingModel.Site], stepSeconds: Double) -> [Kind] {
        var byKey = Dictionary(uniqueKeysWithValues: kinds.map { ($0.key, Kind(key: $0.key, regions: 0, oneThreadSeconds: 0, predictedSeconds: 0)) })
        for site in sites {
            let k = kind(ofSite: site.file)
            byKey[k]!.regions += site.regions
            byKey[k]!.oneThreadSeconds += site.serialSeconds
            byKey[k]!.predictedSeconds += site.largestSeconds
        }
        // The model's own timing between a region's parts is neither serial work nor part of
        // a region's one-thread time: it is left out of both.
        let outside = Swift.max(0, stepSeconds - sites.reduce(0) { $0 + $1.modelledSeconds })
        byKey["outside_regions"] = Kind(key: "outside_regions", regions: 0, oneThreadSeconds: outside, predictedSeconds: outside)
        return kinds.map { byKey[$0.key]! }
    }

    /// One `ModelRun` from its steps' (sites, wall time): medians field by field.
    static func modelRun(threads: Int, steps: [(sites: [ScalingModel.Site], seconds: Double)]) -> ModelRun {
        let perStep = steps.map { kindFigures(sites: $0.sites, stepSeconds: $0.seconds) }
        let median = TrainingBenchmark.median
        let byKind = ScalingReport.kinds.indices.map { i in
            Kind(key: perStep[0][i].key, regions: perStep.last![i].regions,
                 oneThreadSeconds: median(perStep.map { $0[i].oneThreadSeconds }),
                 predictedSeconds: median(perStep.map { $0[i].predictedSeconds }))
        }
        return ModelRun(threads: threads, steps: steps.count,
                        oneThreadSeconds: median(perStep.map { $0.reduce(0) { $0 + $1.oneThreadSeconds } }),
                        predictedSeconds: median(perStep.map { $0.reduce(0) { $0 + $1.predictedSeconds } }),
                        kinds: byKind, sites: steps.last!.sites)
    }

    private var measuredOneThread: Double? { measured.first { $0.threads == 1 }?.stepSeconds }

    private func measuredEfficiency(_ m: MeasuredRun) -> Double? {
        measuredOneThread.map { $0 / (Double(m.threads) * m.stepSeconds) }
    }

    public static let note = "a model, not a measurement: one core runs every parallel region cut as T workers would cut it, "
        + "its parts one after another, each timed by the thread's CPU clock; predicted step = time outside regions + sum of each region's largest part; "
        + "efficiency = one-thread time / (T x predicted). No memory-bandwidth or cache sharing, no wake-up or waiting cost."

    public var json: JSONValue {
        func kindObject(_ k: Kind, _ t: Int) -> JSONValue {
            .object([("regions", .int(k.regions)), ("one_thread_s", .double(k.oneThreadSeconds)),
                     ("predicted_s", .double(k.predictedSeconds)),
                     ("efficiency", .double(k.oneThreadSeconds / Swift.max(Double(t) * k.predictedSeconds, 1e-12)))])
        }
        return .object([
            ("note", .string(ScalingReport.note)),
            ("load_average", .array([.double(loadAverage.before), .double(loadAverage.after)])),
            ("model", .array(model.map { r in
                .object([("threads", .int(r.threads)), ("steps", .int(r.steps)), ("one_thread_s", .double(r.oneThreadSeconds)),
                         ("predicted_s", .double(r.predictedSeconds)), ("efficiency", .double(r.efficiency)),
                         ("kinds", .object(r.kinds.map { ($0.key, kindObject($0, r.threads)) })),
                         ("sites", .object(r.sites.map { s in
                             (s.file, .object([("regions", .int(s.regions)), ("one_thread_s", .double(s.serialSeconds)),
                                               ("largest_s", .double(s.largestSeconds))]))
                         }))])
            })),
            ("fc1_share_gflops", .object([
                ("m", .int(fc1Shape.m)), ("n", .int(fc1Shape.n)), ("k", .int(fc1Shape.k)),
                ("shares", .array(fc1Shares.map { r in
                    .object([("threads", .int(r.threads)), ("rows", .int(r.rows)), ("by_rows", .double(r.rowsGFLOPs)),
                             ("columns", .int(r.columns)), ("by_columns", .double(r.columnsGFLOPs)),
                             ("by_columns_panels_packed", .double(r.panelColumnsGFLOPs))])
                })),
            ])),
            ("measured", .array(measured.map { m in
                .object([("threads", .int(m.threads)), ("step_s", .double(m.stepSeconds)),
                         ("efficiency", .number(measuredEfficiency(m)))])
            })),
        ])
    }

    public var table: String {
        let dash = "—"
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: Swift.max(0, n - s.count)) + s }
        func pct(_ x: Double) -> String { String(format: "%.0f %%", 100 * x) }
        var s = "Scaling model — \(ScalingReport.note)\n"
        s += "  Median of \(model.first?.steps ?? 0) modelled step(s) per T; measured: the real step at T threads on this machine"
            + String(format: " (load average %.2f before, %.2f after).\n", loadAverage.before, loadAverage.after)
        s += "      T  one-thread s  predicted s  speed-up  efficiency │  measured s  efficiency\n"
        let threads = Set(model.map(\.threads)).union(measured.map(\.threads)).sorted()
        for t in threads {
            var line = pad("\(t)", 7)
            if let r = model.first(where: { $0.threads == t }) {
                line += pad(String(format: "%.3f", r.oneThreadSeconds), 14) + pad(String(format: "%.3f", r.predictedSeconds), 13)
                    + pad(String(format: "%.2f×", r.oneThreadSeconds / r.predictedSeconds), 10) + pad(pct(r.efficiency), 12)
            } else {
                line += pad(dash, 14) + pad(dash, 13) + pad(dash, 10) + pad(dash, 12)
            }
            line += " │"
            if let m = measured.first(where: { $0.threads == t }) {
                line += pad(String(format: "%.3f", m.stepSeconds), 12) + pad(measuredEfficiency(m).map(pct) ?? dash, 12)
            } else {
                line += pad(dash, 12) + pad(dash, 12)
            }
            s += line + "\n"
        }
        if !fc1Shares.isEmpty {
            s += "  fc1 \(fc1Shape.m)×\(fc1Shape.k) · \(fc1Shape.k)×\(fc1Shape.n): one worker's share alone on one core, GFLOP/s\n"
            s += "      T   by rows (rows × \(fc1Shape.n))   by columns (\(fc1Shape.m) × columns)   same columns, panel kernel (packed once)\n"
            for r in fc1Shares {
                s += pad("\(r.threads)", 7) + pad("\(r.rows)", 8) + pad(String(format: "%.1f", r.rowsGFLOPs), 15)
                    + pad("\(r.columns)", 10) + pad(String(format: "%.1f", r.columnsGFLOPs), 15)
                    + pad(String(format: "%.1f", r.panelColumnsGFLOPs), 20) + "\n"
            }
        }
        guard let widest = model.last else { return s }
        s += "  By kind of region: regions per step and one-thread s (T = \(widest.threads) run), predicted s (efficiency) at each T\n"
        s += "  " + "kind".padding(toLength: 22, withPad: " ", startingAt: 0) + pad("regions", 8) + pad("1-thread", 10)
        for r in model { s += pad("T=\(r.threads)", 18) }
        s += "\n"
        for (i, kind) in ScalingReport.kinds.enumerated() {
            let k = widest.kinds[i]
            if k.oneThreadSeconds == 0 && k.regions == 0 { continue }
            s += "  " + kind.label.padding(toLength: 22, withPad: " ", startingAt: 0)
                + pad(kind.key == "outside_regions" ? dash : "\(k.regions)", 8) + pad(String(format: "%.3f", k.oneThreadSeconds), 10)
            for r in model {
                let kr = r.kinds[i]
                let e = kr.oneThreadSeconds / Swift.max(Double(r.threads) * kr.predictedSeconds, 1e-12)
                s += pad(String(format: "%.3f", kr.predictedSeconds) + " (" + pad(pct(e), 5) + ")", 18)
            }
            s += "\n"
        }
        return s
    }
}

extension TrainingBenchmark {
    /// The scaling model at every T of `modelThreads` (and at each measured T above 1), and
    /// the real step measured at 1, 2, 4 … `Parallel.threads` (and `Parallel.threads`
    /// itself): `warmup` + `steps` steps at each measured T (`measuredAtThreads`, the
    /// median `run` already took at `Parallel.threads`, is reused), then `warmup` modelled
    /// steps at the largest T and `modelSteps` at each T.
    public func scaling(modelThreads: [Int], steps: Int, warmup: Int, modelSteps: Int,
                        measuredAtThreads: Double? = nil) -> ScalingReport {
        let load = ScalingReport.currentLoadAverage()
        let cores = Parallel.threads
        var measuredThreads = [Int]()
        var t = 1
        while t < cores { measuredThreads.append(t); t *= 2 }
        measuredThreads.append(cores)
        let stepper = StepRunner(self)
        var measured = [ScalingReport.MeasuredRun]()
        for t in measuredThreads {
            if t == cores, let seconds = measuredAtThreads {
                measured.append(.init(threads: t, stepSeconds: seconds))
                continue
            }
            Parallel.threads = t
            var times = [Double]()
            for k in 0..<(Swift.max(0, warmup) + Swift.max(1, steps)) {
                let seconds = stepper.step().seconds
                if k >= warmup { times.append(seconds) }
            }
            measured.append(.init(threads: t, stepSeconds: TrainingBenchmark.median(times)))
        }
        Parallel.threads = cores
        let modelled = Set(modelThreads).union(measuredThreads.filter { $0 > 1 }).sorted()
        var model = [ScalingReport.ModelRun]()
        if let widest = modelled.last {
            for _ in 0..<Swift.max(0, warmup) { _ = ScalingModel.measure(threads: widest) { _ = stepper.step() } }
        }
        for t in modelled.reversed() {
            var runs = [(sites: [ScalingModel.Site], seconds: Double)]()
            for _ in 0..<Swift.max(1, modelSteps) {
                var seconds = 0.0
                let sites = ScalingModel.measure(threads: t) {
                    let c0 = ScalingModel.threadCPUSeconds()
                    _ = stepper.step()
                    seconds = ScalingModel.threadCPUSeconds() - c0
                }
                runs.append((sites, seconds))
            }
            model.insert(ScalingReport.modelRun(threads: t, steps: runs), at: 0)
        }
        var report = ScalingReport(model: model, measured: measured)
        let a = network.backbone.architecture
        let grid = network.inputSize / config.model.backbone.patchSize
        let hidden: Int
        switch a.feedForward {
        case .mlp(let h, _): hidden = h
        case .swiglu(let h, _): hidden = h
        }
        report.fc1Shape = (grid * grid + a.prefixTokens, hidden, a.channels)
        report.fc1Shares = ScalingReport.shareRates(m: report.fc1Shape.m, n: hidden, k: a.channels,
                                                    threads: Array(Set([1] + modelled)).sorted())
        report.loadAverage = (load, ScalingReport.currentLoadAverage())
        return report
    }
}
