import ArgumentParser
import Core
import Distributed
import Foundation
import Numerics
import Training

/// `causal-tune bench --config FILE [--steps N] [--json FILE]`: warm-up plus N training
/// steps of the configured model on images generated in memory; prints the median step
/// time, its split, the GEMM FLOP rate against the sgemm peak measured in the same run and
/// the peak RSS (reference §Command line). Under `mpirun -np N` every rank runs its share of the batch;
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

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (the median of no steps is undefined), got \(steps)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
        guard peakSize >= 1 && peakSize <= 16384 else { throw ValidationError("--peak-size must be 1…16384, got \(peakSize)") }
    }

    func run() throws {
        let comm = Communicator.make()
        comm.run {
            let cfg = try ExperimentConfig.load(path: config, overrides: overrides)
            try HDF5Preflight.check(.weights(of: cfg), comm: comm)
            let bench = try TrainingBenchmark(config: cfg, communicator: comm)
            let result = bench.run(steps: steps, warmup: warmup, peakSize: peakSize)
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
