import ArgumentParser
import Core
import Data
import Distributed
import Foundation
import RunIO
import Training
import Visualization

/// `causal-tune evaluate --config FILE --checkpoint CKPT [--dataset NAME ...] [--save-pred DIR] [--json FILE]`
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate a checkpoint on the config's validation domains (sliding window, mIoU).",
        discussion: """
        Prints the per-class IoU table and writes the JSON to WORK_DIR/eval_<checkpoint stem>.json (and --json). \
        With --save-pred DIR, writes for every image DIR/<domain>/<stem>.png (train ids, what `score` reads), \
        <stem>_color.png (Cityscapes palette), <stem>_overlay.png and <stem>_error.png (wrong red, ignored \
        black, correct the dimmed ground-truth colour), at the image's original size; \
        `causal-tune score --pred DIR/<domain> --gt <label folder>` reproduces the domain's mIoU.
        """
    )

    @Option(help: "Experiment config (YAML).") var config: String
    @Option(help: "Checkpoint: our HDF5 file or a Rein / mmseg .pth.") var checkpoint: String
    @Option(name: .customLong("dataset"), parsing: .upToNextOption,
            help: "Only these val domains (display name, e.g. citys, or dataset name); repeatable.")
    var datasets: [String] = []
    @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override a config key: key.path=value.")
    var overrides: [String] = []
    @Option(help: "Work directory (overrides output.work_dir).") var workDir: String?
    @Option(help: "Also write the metrics JSON here.") var json: String?
    @Option(name: .customLong("save-pred"),
            help: ArgumentHelp("Write prediction PNGs (train ids, colour, overlay, error map) under DIR/<domain>/.",
                               valueName: "DIR"))
    var savePred: String?

    func run() throws {
        let comm = Communicator.make()
        comm.run {
            let cfg = try ExperimentConfig.load(path: config, overrides: overrides, workDir: workDir)
            try HDF5Preflight.check(.checkpoint(checkpoint), .weights(of: cfg), comm: comm)
            let log = comm.isRoot ? RunLog.console() : RunLog.silent()
            RunLog.current = log
            // Rank 0 alone writes the pictures (the evaluator gathers every prediction there).
            let pictures = try savePred.flatMap { comm.isRoot ? try PredictionPictures(directory: $0) : nil }
            let report = try CheckpointEvaluation.run(config: cfg, checkpoint: checkpoint, datasets: datasets,
                                                      comm: comm, log: log, predictions: pictures?.sink)
            if comm.isRoot {
                print(report.table)
                let stem = URL(fileURLWithPath: checkpoint).deletingPathExtension().lastPathComponent
                let dir = cfg.output.workDir
                do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                    throw CausalTuneError("\(dir): cannot create the work directory")
                }
                try AtomicFile.write(report.json + "\n", to: "\(dir)/eval_\(stem).json")
                if let json { try AtomicFile.write(report.json + "\n", to: json) }
                if let pictures { print("predictions (train ids, colour, overlay, error map) written under \(pictures.directory)/<domain>/") }
            }
        }
    }
}
