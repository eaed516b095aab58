import Core
import Distributed
import Foundation
import Heads
import Layers
import Numerics
import PEFT
import RunIO

/// `causal-tune bench`: the real training step of a configured model, timed.
///
///     per step  data → forward (backbone, PEFT, head) → backward (head, PEFT, backbone)
///               (each image on its own) → one all-gather of the gradients (SlotGradientSum) → AdamW
///     step_s    median over `steps` timed steps after `warmup` untimed ones
///     gflops    StepFLOPs.total / step_s (GEMM FLOPs only, see StepFLOPs)
///     peak      best of `peakRepeats` square cblas_sgemm of `peakSize`³ in the same process
///
/// Images `[b, 3, S, S]` ~ N(0, 1) and labels uniform over the classes are generated in
/// memory each step, in chunks over the workers (that is the `data` time; the PyTorch peer
/// draws them with `torch.randn`/`randint` inside its step too), so no dataset is read. The split of the
/// forward and backward into backbone / PEFT / head uses the network's own head timers
/// and a timing wrapper around the adapter (the backbone's share is the rest, including
/// the recompute forward of the blocks when it is on). Under MPI every rank runs the
/// step on its `batch_size / world` images; per-rank medians and peak RSS are gathered.
public final class TrainingBenchmark {
    public struct Result {
        public var stepSeconds: [Double]          // this rank's timed steps
        public var cpuSeconds: [Double]           // this process's CPU time (all threads) per timed step
        public var split: [(String, Double)]      // medians, in step order
        public var flops: StepFLOPs
        public var sgemmPeakGFLOPs: Double
        public var peakRSSMegabytes: Double
        public var batch: Int                     // global batch
        public var world: Int
        public var threads: Int
        public var allReduceBytes: Int
        public var perRankStepSeconds: [Double]
        public var perRankPeakRSSMegabytes: [Double]
        /// The scaling model and the step measured at 1, 2, 4 … threads (`--model-threads`).
        public var scaling: ScalingReport? = nil

        public var stepSecondsMedian: Double { TrainingBenchmark.median(stepSeconds) }
        /// CPU seconds of a step (all threads): on a shared machine the wall time grows with
        /// the others' load, this much less.
        public var cpuSecondsMedian: Double { TrainingBenchmark.median(cpuSeconds) }
        public var imagesPerSecond: Double { Double(batch) / stepSecondsMedian }
        /// GFLOP of the global step (all ranks).
        public var gflopPerStep: Double { flops.total * Double(world) / 1e9 }
        /// Achieved GFLOP/s of one rank against the sgemm peak of one rank.
        public var gflops: Double { flops.total / 1e9 / stepSecondsMedian }

        /// reference §Command line keys plus details.
        public var json: String {
            var fields: [(String, JSONValue)] = [
                ("step_s_median", .double(stepSecondsMedian)), ("images_per_s", .double(imagesPerSecond)),
                ("gflop_per_step", .double(gflopPerStep)), ("gflops", .double(gflops)),
                ("sgemm_peak_gflops", .double(sgemmPeakGFLOPs)), ("peak_rss_mb", .double(peakRSSMegabytes)),
                ("split_s", .object(split.map { ($0.0, JSONValue.double($0.1)) })),
            ]
            fields.append(("peak_fraction", .double(gflops / sgemmPeakGFLOPs)))
            fields.append(("cpu_s_median", .double(cpuSecondsMedian)))
            fields.append(("gflop_per_step_split", .object([
                ("patch_embed", .double(flops.patchEmbed / 1e9)), ("backbone_forward", .double(flops.backboneForward / 1e9)),
                ("backbone_backward", .double(flops.backboneBackward / 1e9)), ("recompute", .double(flops.recompute / 1e9)),
                ("peft_forward", .double(flops.peftForward / 1e9)), ("peft_backward", .double(flops.peftBackward / 1e9)),
                ("head_forward", .double(flops.headForward / 1e9)), ("head_backward", .double(flops.headBackward / 1e9)),
            ])))
            fields.append(("head_flops_counted", .bool(flops.headCounted)))
            fields.append(("blas_core", .string(BLAS.coreName)))
            fields.append(("product_kernel", .string(PanelProduct.kernel.rawValue)))
            fields.append(("partition_width", .int(ProductTiling.width)))
            fields.append(("batch", .int(batch)))
            fields.append(("world", .int(world)))
            fields.append(("threads", .int(threads)))
            fields.append(("steps", .int(stepSeconds.count)))
            fields.append(("step_s", .array(stepSeconds.map { .double($0) })))
            fields.append(("allreduce_bytes", .int(allReduceBytes)))
            fields.append(("per_rank_step_s_median", .array(perRankStepSeconds.map { .double($0) })))
            fields.append(("per_rank_peak_rss_mb", .array(perRankPeakRSSMegabytes.map { .double($0) })))
            if let scaling { fields.append(("scaling_model", scaling.json)) }
            return JSONValue.object(fields).text
        }

        /// A human-readable summary.
        public var table: String {
            var s = String(format: "step %.4f s (median of %d)  %.2f images/s  %.2f GFLOP/step  %.1f GFLOP/s  sgemm peak %.1f GFLOP/s  (%.0f %% of peak)  peak RSS %.0f MB\n",
                           stepSecondsMedian, stepSeconds.count, imagesPerSecond, gflopPerStep, gflops, sgemmPeakGFLOPs,
                           100 * gflops / sgemmPeakGFLOPs, peakRSSMegabytes)
            s += String(format: "  CPU time %.4f s per step (all threads)\n", cpuSecondsMedian)
            s += "  OpenBLAS kernels: \(BLAS.coreName)"
            if BLAS.kernelChosenAtStart != nil { s += " (chosen from the CPU's flags; OPENBLAS_CORETYPE overrides)" }
            s += BLAS.runsGenericKernels ? " — generic ones: set OPENBLAS_CORETYPE (SkylakeX on AVX-512 CPUs, Haswell on AVX2; launch/env.sh does)\n" : "\n"
            s += "  products: " + TrainingBenchmark.productKernelDescription + "\n"

            for (k, v) in split {
                s += "  " + k.padding(toLength: 18, withPad: " ", startingAt: 0)
                    + String(format: " %8.4f s  %5.1f %%\n", v, 100 * v / stepSecondsMedian)
            }
            if world > 1 {
                s += String(format: "  all-reduce %d bytes per step; world %d\n", allReduceBytes, world)
                for r in 0..<world {
                    s += String(format: "  rank %d: step %.4f s, peak RSS %.0f MB\n", r, perRankStepSeconds[r], perRankPeakRSSMegabytes[r])
                }
            }
            if let scaling { s += scaling.table }
            return s
        }
    }

    public let config: ExperimentConfig
    public let comm: Communicator
    public let network: SegmentationNetwork
    public let parameters: ParameterSet
    public let optimizer: Optimizer
    fileprivate let timer: TimingAdapter?

    public init(config: ExperimentConfig, communicator: Communicator) throws {
        self.config = config
        comm = communicator
        let t = config.train
        guard t.batchSize % communicator.size == 0 else {
            throw CausalTuneError("train.batch_size: \(t.batchSize) is not divisible by the number of ranks (\(communicator.size))")
        }
        Trainer.configureThreads(communicator)
        network = try SegmentationNetwork(config: config, seed: UInt64(t.seed))
        parameters = ParameterSet(network.trainableParameters)
        optimizer = Optimizer(t.optimizer == .sgd ? .sgd : .adamw, parameters: parameters, weightDecay: t.weightDecay,
                              betas: (t.betas[0], t.betas[1]), eps: t.eps)
        if let a = network.backbone.adapter {
            let w = TimingAdapter(a)
            network.backbone.adapter = w
            timer = w
        } else {
            timer = nil
        }
    }

    /// The FLOP count of one rank's step.
    public var flops: StepFLOPs {
        let m = config.model
        let opts: CausalTuneOptions? = m.peft
        return StepFLOPs.count(architecture: network.backbone.architecture, imageSize: network.inputSize,
                               patchSize: m.backbone.patchSize, batch: config.train.batchSize / comm.size,
                               recompute: m.backbone.recompute, peft: network.adapter == nil ? nil : opts,
                               headClasses: network.head is LinearHead ? network.head.numClasses : nil,
                               headOutputs: network.head.outIndices.count)
    }

    /// Runs `warmup` + `steps` training steps and measures the sgemm peak.
    public func run(steps: Int, warmup: Int = 1, peakSize: Int = 2048, peakRepeats: Int = 3) -> Result {
        let stepper = StepRunner(self)
        var times: [Double] = []
        var cpuTimes: [Double] = []
        var splits: [[Double]] = []
        let names = ["data", "backbone_forward", "peft_forward", "head_forward", "head_backward", "peft_backward",
                     "backbone_backward", "allreduce", "optimizer"]
        // The peak is measured before and after the steps and the better kept: on a shared
        // machine one measurement can catch a busy moment, and a low peak would flatter
        // the step's fraction of it.
        let peakBefore = TrainingBenchmark.sgemmPeak(size: peakSize, repeats: peakRepeats)
        for k in 0..<(Swift.max(0, warmup) + Swift.max(1, steps)) {
            let step = stepper.step()
            guard k >= warmup else { continue }
            times.append(step.seconds)
            cpuTimes.append(step.cpuSeconds)
            splits.append(step.split)
        }
        let peak = Swift.max(peakBefore, TrainingBenchmark.sgemmPeak(size: peakSize, repeats: peakRepeats))
        let rss = TrainingBenchmark.peakRSSMegabytes()
        let split = names.enumerated().map { (i, n) in (n, TrainingBenchmark.median(splits.map { $0[i] })) }
        // Per-rank figures: each rank fills its slot, the sum gathers them.
        var gathered = [Double](repeating: 0, count: 2 * comm.size)
        gathered[comm.rank] = TrainingBenchmark.median(times)
        gathered[comm.size + comm.rank] = rss
        comm.allReduceSum(&gathered)
        return Result(stepSeconds: times, cpuSeconds: cpuTimes, split: split, flops: flops, sgemmPeakGFLOPs: peak, peakRSSMegabytes: rss,
                      batch: config.train.batchSize, world: comm.size, threads: Parallel.threads,
                      allReduceBytes: parameters.grads.count * MemoryLayout<Float>.size,
                      perRankStepSeconds: Array(gathered[0..<comm.size]),
                      perRankPeakRSSMegabytes: Array(gathered[comm.size...]))
    }

    /// One training step at a time on generated data: what `run` times, and what the
    /// scaling model (`scaling`) runs.
    final class StepRunner {
        struct Step {
            var seconds: Double
            var cpuSeconds: Double
            var split: [Double]    // in `run`'s `names` order
        }

        private let bench: TrainingBenchmark
        private var rng: RandomGenerator
        private let images: Tensor
        private var labelValues: [UInt8]
        private let slotSum: SlotGradientSum

        init(_ bench: TrainingBenchmark) {
            self.bench = bench
            let config = bench.config, comm = bench.comm
            let b = config.train.batchSize / comm.size, S = bench.network.inputSize
            rng = RandomGenerator(seed: UInt64(config.train.seed) &+ UInt64(comm.rank) &* 7919)
            images = Tensor(zeros: [b, 3, S, S])
            labelValues = [UInt8](repeating: 0, count: b * S * S)
            slotSum = SlotGradientSum(globalBatch: config.train.batchSize, count: bench.parameters.count, communicator: comm)
        }

        func step() -> Step {
            let (network, comm, timer) = (bench.network, bench.comm, bench.timer)
            let b = images.shape[0], S = images.shape[2], K = network.head.numClasses
            comm.barrier()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let c0 = TrainingBenchmark.processCPUSeconds()
            TrainingBenchmark.generate(images: images, labels: &labelValues, classes: K, seed: rng.next())
            let labels = LabelBatch(batch: b, height: S, width: S, values: labelValues)
            let t1 = DispatchTime.now().uptimeNanoseconds
            let localValid = network.head.lossNormalizer(labels: labels)
            let globalValid = Int(comm.allReduceSum(Int64(localValid)))
            timer?.reset()
            slotSum.begin()
            let timings = network.accumulateImageGradients(images: images, labels: labels, normalizer: globalValid,
                                                           pointSeeds: nil, parameters: bench.parameters, into: slotSum,
                                                           beforeImage: { timer?.nextImage() })
            let t2 = DispatchTime.now().uptimeNanoseconds
            _ = slotSum.finish(into: bench.parameters.grads)
            let t3 = DispatchTime.now().uptimeNanoseconds
            bench.optimizer.step(lr: bench.config.train.lr)
            bench.parameters.scatterValues()
            let t4 = DispatchTime.now().uptimeNanoseconds
            let c4 = TrainingBenchmark.processCPUSeconds()
            let s = { (a: UInt64, b: UInt64) in Double(b - a) / 1e9 }
            let pf = timer?.forwardSeconds ?? 0, pb = timer?.backwardSeconds ?? 0
            let fwd = timings.forward, bwd = s(t1, t2) - fwd
            let hf = timings.headForward, hb = timings.headBackward
            // The adapter's recompute forward happens inside the backward: charge it there.
            let pfForward = timer?.forwardInForwardSeconds ?? 0
            return Step(seconds: s(t0, t4), cpuSeconds: c4 - c0,
                        split: [s(t0, t1), fwd - hf - pfForward, pfForward, hf, hb, pb + (pf - pfForward),
                                bwd - hb - pb - (pf - pfForward), s(t2, t3), s(t3, t4)])
        }
    }

    /// Best GFLOP/s of `repeats` square sgemm products `size`³ on `Parallel.threads` cores:
    /// the better of OpenBLAS's own threading (one call with that many BLAS threads) and
    /// ours (`BLAS.gemm`, row blocks on single-threaded sgemm), so the peak is the machine's.
    public static func sgemmPeak(size n: Int, repeats: Int) -> Double {
        let a = Tensor(zeros: [n, n]), b = Tensor(zeros: [n, n]), c = Tensor(zeros: [n, n])
        var rng = RandomGenerator(seed: 3)
        rng.fillUniform(a, -1, 1)
        rng.fillUniform(b, -1, 1)
        var best = Double.infinity
        let saved = BLAS.threads
        defer { BLAS.setThreads(saved) }
        for blasThreads in [Parallel.threads, 1] {
            BLAS.setThreads(blasThreads)
            for _ in 0..<Swift.max(1, repeats) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                BLAS.gemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: a.data, lda: n,
                          b: b.data, ldb: n, c: c.data, ldc: n)
                best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }

    /// Fills `images` with N(0, 1) and `labels` uniformly over `classes`, in chunks spread
    /// over the workers, each chunk with its own generator seeded from `seed` and its index
    /// (so the values do not depend on the thread count).
    static func generate(images: Tensor, labels: inout [UInt8], classes: Int, seed: UInt64) {
        let chunks = 64
        let flat = images.reshaped([images.count])
        let n = images.count, m = labels.count
        labels.withUnsafeMutableBufferPointer { lp in
            let l = lp.baseAddress!
            Parallel.forEach(chunks) { range in
                for ch in range {
                    var g = RandomGenerator(seed: seed &+ UInt64(ch) &* 0x9E37_79B9_7F4A_7C15)
                    let lo = n * ch / chunks, hi = n * (ch + 1) / chunks
                    if lo < hi { g.fillNormal(flat.rows(lo..<hi)) }
                    for i in (m * ch / chunks)..<(m * (ch + 1) / chunks) { l[i] = UInt8(g.integer(below: classes)) }
                }
            }
        }
    }

    /// CPU time of this process (user + system, all threads), seconds.
    public static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// VmHWM from /proc/self/status, in MiB (0 where unavailable).
    public static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
        }
        return 0
    }

    /// Which code runs the products, for the report.
    static var productKernelDescription: String {
        switch PanelProduct.kernel {
        case .openblas:
            return "OpenBLAS tiles, partition width \(ProductTiling.width) (CAUSAL_TUNE_PRODUCTS=panels: our panel kernel)"
        case .panels:
            return "our panel kernel (\(PanelProduct.simdKernelName)), tiles by thread count; below 2^19 multiply-adds and attention's per-head products on OpenBLAS; partition width \(ProductTiling.width)"
        }
    }

    static func median(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return 0 }
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// Times the adapter it wraps. A layer's first forward since `reset` belongs to the
/// backbone's forward; a second one is the recompute forward inside its backward.
final class TimingAdapter: BlockAdapter {
    let inner: BlockAdapter
    private(set) var forwardSeconds = 0.0
    private(set) var forwardInForwardSeconds = 0.0
    private(set) var backwardSeconds = 0.0
    private var seen = Set<Int>()

    init(_ inner: BlockAdapter) { self.inner = inner }

    func reset() {
        forwardSeconds = 0; forwardInForwardSeconds = 0; backwardSeconds = 0; seen.removeAll(keepingCapacity: true)
    }

    /// A new image's forward follows: its first forward of each layer is a forward again,
    /// not a recompute.
    func nextImage() {
        seen.removeAll(keepingCapacity: true)
    }

    func forward(layer: Int, input: Tensor, output: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        inner.forward(layer: layer, input: input, output: output, prefixTokens: prefixTokens, grid: grid)
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        forwardSeconds += dt
        if seen.insert(layer).inserted { forwardInForwardSeconds += dt }
    }

    func backward(layer: Int, dOutput: Tensor, dInput: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        inner.backward(layer: layer, dOutput: dOutput, dInput: dInput, prefixTokens: prefixTokens, grid: grid)
        backwardSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
