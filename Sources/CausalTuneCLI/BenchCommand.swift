import ArgumentParser
import Core
import Distributed
import Foundation
import Numerics
import Training

/// `causal-tune bench --config FILE [--steps N] [--json FILE] [--model-threads 8,16,…]`:
/// warm-up plus N training steps of the configured model on images generated in memory;
/// prints the median step time, its split, the GEMM FLOP rate against the sgemm peak
/// measured in the same run and the peak RSS (reference §Command line); with
/// `--model-threads`, the scaling model (`Training/ScalingReport.swift`) after it. Under `mpirun -np N` every rank runs its share of the batch;
/// rank 0 prints per-rank figures and the all-reduce bytes, and alone writes `--json`.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the training step of a configured model (in-memory random images).",
        discussion: "See docs/performance.md. The FLOP count is the step's GEMMs (Training/StepFLOPs.swift)."
    )

    @Option(help: "Experiment config (YAML; every key in docs/reference.md, Configuration).") var config: String
    @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override a config key: key.path=value (repeatable).")
    var overrides: [String] = []
    @Option(help: "Timed steps (the median is reported).") var steps = 5
    @Option(help: "Untimed warm-up steps.") var warmup = 1
    @Option(name: .customLong("peak-size"), help: "Side of the square sgemm that measures the peak.") var peakSize = 2048
    @Option(help: "Write the summary as JSON here (rank 0; keys in docs/reference.md, Command line).") var json: String?
    @Option(name: .customLong("model-threads"),
            help: "Also run the scaling model at these thread counts (comma-separated, e.g. 8,16,32,64; see docs/performance.md) and measure the step at 1, 2, 4 … threads.")
    var modelThreads: String?
    @Option(name: .customLong("model-steps"), help: "Modelled steps per thread count (the median is reported).") var modelSteps = 1

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (the median of no steps is undefined), got \(steps)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
        guard peakSize >= 1 && peakSize <= 16384 else { throw ValidationError("--peak-size must be 1…16384, got \(peakSize)") }
        _ = try parsedModelThreads()
        guard modelSteps >= 1 else { throw ValidationError("--model-steps must be at least 1, got \(modelSteps)") }
    }

    /// `--model-threads` as thread counts (empty when absent).
    func parsedModelThreads() throws -> [Int] {
        guard let modelThreads else { return [] }
        let parts = modelThreads.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        let counts = parts.compactMap { Int($0) }
        guard !parts.isEmpty, counts.count == parts.count, counts.allSatisfy({ (1...4096).contains($0) }) else {
            throw ValidationError("--model-threads must be thread counts 1…4096 separated by commas (e.g. 8,16,32,64), got '\(modelThreads)'")
        }
        return counts
    }

    func run() throws {
        let comm = Communicator.make()
        comm.run {
            let cfg = try ExperimentConfig.load(path: config, overrides: overrides)
            try HDF5Preflight.check(.weights(of: cfg), comm: comm)
            let bench = try TrainingBenchmark(config: cfg, communicator: comm)
            var result = bench.run(steps: steps, warmup: warmup, peakSize: peakSize)
            let modelled = try parsedModelThreads()
            if !modelled.isEmpty {
                result.scaling = bench.scaling(modelThreads: modelled, steps: steps, warmup: warmup, modelSteps: modelSteps,
                                               measuredAtThreads: result.stepSecondsMedian)
            }
            if comm.isRoot {
                let m = cfg.model
                print("causal-tune bench: \(m.backbone.arch) at \(m.backbone.imageSize), batch \(cfg.train.batchSize), \(m.peft.method.rawValue) + \(m.head.type.rawValue) head, recompute \(m.backbone.recompute), world \(comm.size), \(Parallel.threads) threads")
                print(bench.network.trainableSummary)
                print(result.table, terminator: "")
                if let path = json { try AtomicFile.write(result.json + "\n", to: path) }
            }
        }
    }
}
