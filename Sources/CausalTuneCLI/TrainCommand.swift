import ArgumentParser
import Distributed
import Foundation
import Training

/// `causal-tune train --config FILE [--set key.path=value ...] [--work-dir DIR]
///                    [--resume CKPT | --init CKPT] [--with-backbone]`
/// Single process without mpirun; data-parallel under `mpirun -np N` (rank 0 prints and writes).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train Causal-Tune + decode head on a frozen vision foundation model (DINOv2, EVA02, CLIP; data-parallel under mpirun).",
        discussion: """
        Writes WORK_DIR/config.yaml (resolved), metrics.jsonl, train.log, iter_<k>.h5 checkpoints \
        (the last train.keep) and best.h5, and eval_iter_<k>.json. The synthetic benchmark is \
        generated when a synthetic dataset root is data/synthetic and does not exist. The work \
        directory is locked (WORK_DIR/.lock) while the run lasts.
        """
    )

    @Option(help: "Experiment config (YAML; every key in docs/reference.md, Configuration).") var config: String
    @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override a config key: key.path=value (repeatable).")
    var overrides: [String] = []
    @Option(help: "Work directory (overrides output.work_dir).") var workDir: String?
    @Option(help: "Resume from a checkpoint: parameters, optimizer moments, step, schedule, RNG.") var resume: String?
    @Option(name: .customLong("init"), help: "Initialise the trainable parameters from a checkpoint (parameters only; our HDF5 file or a Rein / mmseg .pth).")
    var initFrom: String?
    @Flag(help: "Also store the frozen backbone weights (/backbone/<name>) in every checkpoint.") var withBackbone = false
    @Flag(name: .customLong("allow-backbone-change"),
          help: "With --resume: continue even if the backbone weights differ (SHA-256) from those the checkpoint was trained on.")
    var allowBackboneChange = false

    func run() throws {
        let comm = Communicator.make()
        comm.run {
            let cfg = try ExperimentConfig.load(path: config, overrides: overrides, workDir: workDir)
            try HDF5Preflight.check(.checkpoint(resume), .checkpoint(initFrom), .weights(of: cfg), .best(of: cfg), comm: comm)
            let trainer = try Trainer(config: cfg, options: .init(resume: resume, initFrom: initFrom, withBackbone: withBackbone,
                                                                   allowBackboneChange: allowBackboneChange),
                                      communicator: comm)
            let report = try trainer.run()
            if comm.isRoot {
                if let r = report {
                    print(r.table)
                } else {
                    print("no validation domains configured (data.val); nothing evaluated")
                }
                print("work dir: \(cfg.output.workDir)")
            }
        }
    }
}
