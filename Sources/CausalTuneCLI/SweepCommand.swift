import ArgumentParser
import Core
import Distributed
import Foundation
import Training
import Visualization

/// `causal-tune sweep` — the filter cut-off sweep: train (or collect) a grid of
/// `filter.low` × `filter.high` runs from one base config, draw the accuracy matrix.
///
/// Training happens in this process through `Trainer`, one grid point after the other, so
/// under `mpirun -np N` every point trains data-parallel on all ranks; rank 0 alone decides
/// which points still need training (and tells the others), collects, prints and draws.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Grid of filter.low × filter.high runs from a base config; heat map PNG and CSV of the final mean mIoU.",
        discussion: """
        Point (l, h) trains in WORK_ROOT/low<l>_high<h> with `--set model.peft.filter.low=l \
        --set model.peft.filter.high=h` (plus any --set given here); points with l ≥ h are \
        not a band and are skipped. A point whose metrics.jsonl already holds an evaluation \
        at the configured last step (train.iters) is not trained again unless --retrain. Its \
        score is the mean over domains of the last evaluation's mIoU, leaving out the \
        training domain (--exclude-domain, default `source`). Writes WORK_ROOT/sweep.csv and \
        WORK_ROOT/sweep.png (or --csv/--out). With --collect-only nothing is trained and no \
        config is needed.
        """
    )

    @Option(help: "Base config (YAML).") var config: String?
    @Option(help: "filter.low values, e.g. 0.1,0.2,0.3.") var low: String
    @Option(help: "filter.high values, e.g. 0.5,0.7,0.9.") var high: String
    @Option(name: .customLong("work-root"), help: "Folder of the grid's work directories.") var workRoot: String = "runs/sweep"
    @Flag(name: .customLong("collect-only"), help: "Only collect finished runs; train nothing.") var collectOnly = false
    @Flag(help: "Train every point again, even those already finished.") var retrain = false
    @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Extra key.path=value overrides for every run.")
    var sets: [String] = []
    @Option(name: .customLong("exclude-domain"), help: "Evaluated domains left out of the mean (repeatable; default: source).")
    var excludeDomains: [String] = []
    @Option(help: "Heat map PNG (default WORK_ROOT/sweep.png).") var out: String?
    @Option(help: "CSV table (default WORK_ROOT/sweep.csv).") var csv: String?

    func run() throws {
        if collectOnly {
            try VisualizeCommand.reportingErrors {
                let (lows, highs, points) = try grid()
                try collectAndDraw(lows: lows, highs: highs, points: points)
            }
            return
        }
        let comm = Communicator.make()
        comm.run {
            let (lows, highs, points) = try grid()
            guard let config else { throw CausalTuneError("sweep: --config is required unless --collect-only") }
            for (n, p) in points.enumerated() {
                let overrides = sets + ["model.peft.filter.low=\(Sweep.format(p.low))", "model.peft.filter.high=\(Sweep.format(p.high))",
                                        "output.work_dir=\(p.workDir)"]
                let cfg = try ExperimentConfig.load(path: config, overrides: overrides)
                // Rank 0 looks at the work directory; every rank follows its decision.
                var done: [Double] = [0]
                if comm.isRoot && !retrain && SweepCommand.finished(p.workDir, iters: cfg.train.iters) { done[0] = 1 }
                comm.allReduceSum(&done)
                let label = "[\(n + 1)/\(points.count)] low \(Sweep.format(p.low)), high \(Sweep.format(p.high))"
                if done[0] > 0 {
                    if comm.isRoot { print("sweep \(label): finished in \(p.workDir), not retrained") }
                    continue
                }
                if comm.isRoot { print("sweep \(label): training in \(p.workDir)") }
                try HDF5Preflight.check(.weights(of: cfg), .best(of: cfg), comm: comm)
                Trainer.configureThreads(comm)
                let trainer = try Trainer(config: cfg, communicator: comm)
                try trainer.run()
            }
            if comm.isRoot { try collectAndDraw(lows: lows, highs: highs, points: points) }
        }
    }

    /// The parsed lists and the valid points.
    func grid() throws -> ([Double], [Double], [Sweep.Point]) {
        let lows = try Sweep.parseList(low, name: "low")
        let highs = try Sweep.parseList(high, name: "high")
        let points = Sweep.points(lows: lows, highs: highs, root: workRoot)
        guard !points.isEmpty else { throw CausalTuneError("--low/--high: no point with low < high (nothing to sweep)") }
        return (lows, highs, points)
    }

    /// Whether `workDir/metrics.jsonl` holds an evaluation at step `iters` or later.
    static func finished(_ workDir: String, iters: Int) -> Bool {
        guard let m = try? TrainingMetrics.load(workDir: workDir) else { return false }
        return m.miou.values.contains { $0.contains { $0.x >= Double(iters) } }
    }

    func collectAndDraw(lows: [Double], highs: [Double], points: [Sweep.Point]) throws {
        let excluded = Set(excludeDomains.isEmpty ? ["source"] : excludeDomains)
        let results = Sweep.collect(points, excluding: excluded)
        for r in results where r.miou == nil { FileHandle.standardError.write(Data("warning: \(r.note ?? r.point.workDir)\n".utf8)) }
        guard results.contains(where: { $0.miou != nil }) else {
            throw CausalTuneError("\(workRoot): no finished run of the grid (no evaluation in any low<l>_high<h>/metrics.jsonl)")
        }
        let csvPath = csv ?? (workRoot as NSString).appendingPathComponent("sweep.csv")
        let pngPath = out ?? (workRoot as NSString).appendingPathComponent("sweep.png")
        do {
            let dir = (csvPath as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            try Sweep.csv(results).write(toFile: csvPath, atomically: true, encoding: .utf8)
        } catch {
            throw CausalTuneError("\(csvPath): cannot write CSV: \(error.localizedDescription)")
        }
        let title = "mean mIoU (%) without " + excluded.sorted().joined(separator: ", ")
        let map = Sweep.heatMap(results, lows: lows, highs: highs, title: title)
        try map.render().writePNG(to: pngPath)
        print(SweepCommand.table(map))
        print(csvPath)
        print(pngPath)
    }

    /// The matrix as text: rows low, columns high, mean mIoU in percent.
    static func table(_ map: HeatMap) -> String {
        let cells = map.cellTexts
        var lines = ["low\\high " + map.columnLabels.map { $0.padding(toLength: 7, withPad: " ", startingAt: 0) }.joined()]
        for (i, row) in cells.enumerated() {
            lines.append(map.rowLabels[i].padding(toLength: 9, withPad: " ", startingAt: 0)
                         + row.map { $0.padding(toLength: 7, withPad: " ", startingAt: 0) }.joined())
        }
        return lines.joined(separator: "\n")
    }
}
