import ArgumentParser
import Distributed
import Foundation
import Numerics
import Visualization

/// `causal-tune sweep` — the paper's Fig. 4: train (or collect) a grid of
/// `filter.low` × `filter.high` runs from one base config, draw the accuracy matrix.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Grid of filter.low × filter.high runs from a base config; heat map PNG and CSV of the final mean mIoU.",
        discussion: """
        Point (l, h) trains in WORK_ROOT/low<l>_high<h> with `--set model.peft.filter.low=l \
        --set model.peft.filter.high=h` (plus any --set given here); points with l ≥ h are \
        not a band and are skipped. A point whose work directory already holds an evaluation \
        is not trained again unless --retrain. Its score is the mean over target domains of \
        the last evaluation's mIoU in metrics.jsonl. Writes WORK_ROOT/sweep.csv and \
        WORK_ROOT/sweep.png (or --csv/--out). With --collect-only nothing is trained.
        """
    )

    @Option(help: "Base config (YAML).") var config: String?
    @Option(help: "filter.low values, e.g. 0.1,0.2,0.3.") var low: String
    @Option(help: "filter.high values, e.g. 0.5,0.7,0.9.") var high: String
    @Option(name: .customLong("work-root"), help: "Folder of the grid's work directories.") var workRoot: String = "runs/sweep"
    @Flag(name: .customLong("collect-only"), help: "Only collect finished runs; train nothing.") var collectOnly = false
    @Flag(help: "Train every point again, even those with results.") var retrain = false
    @Option(name: .customLong("set"), help: "Extra key.path=value overrides for every run.") var sets: [String] = []
    @Option(help: "Heat map PNG (default WORK_ROOT/sweep.png).") var out: String?
    @Option(help: "CSV table (default WORK_ROOT/sweep.csv).") var csv: String?

    func run() throws {
        try VisualizeCommand.reportingErrors {
            let lows = try Sweep.parseList(low, name: "low")
            let highs = try Sweep.parseList(high, name: "high")
            let points = Sweep.points(lows: lows, highs: highs, root: workRoot)
            guard !points.isEmpty else {
                throw CausalTuneError("--low/--high: no point with low < high (nothing to sweep)")
            }
            if !collectOnly {
                guard let config else { throw CausalTuneError("sweep: --config is required unless --collect-only") }
                for p in points {
                    if !retrain, let m = try? TrainingMetrics.load(workDir: p.workDir), m.finalMeanMIoU != nil {
                        print("\(p.workDir): has results, not retrained")
                        continue
                    }
                    try SweepTraining.train(config: config, low: p.low, high: p.high, sets: sets, workDir: p.workDir)
                }
            }
            let results = Sweep.collect(points)
            for r in results where r.miou == nil { fputs("warning: \(r.note ?? r.point.workDir)\n", stderr) }
            guard results.contains(where: { $0.miou != nil }) else {
                throw CausalTuneError("\(workRoot): no finished run of the grid (no evaluation in any low<l>_high<h>/metrics.jsonl)")
            }
            let csvPath = csv ?? (workRoot as NSString).appendingPathComponent("sweep.csv")
            let pngPath = out ?? (workRoot as NSString).appendingPathComponent("sweep.png")
            do {
                try FileManager.default.createDirectory(atPath: (csvPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Sweep.csv(results).write(toFile: csvPath, atomically: true, encoding: .utf8)
            } catch {
                throw CausalTuneError("\(csvPath): cannot write CSV: \(error.localizedDescription)")
            }
            let map = Sweep.heatMap(results, lows: lows, highs: highs)
            try map.render().writePNG(to: pngPath)
            print(SweepCommand.table(map))
            print(csvPath)
            print(pngPath)
        }
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

/// Trains one grid point.
enum SweepTraining {
    static func train(config: String, low: Double, high: Double, sets: [String], workDir: String) throws {
        if Communicator.launchedByMPI() {
            throw CausalTuneError("sweep: training under mpirun needs the in-process trainer; run the sweep without mpirun, or --collect-only")
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var args = ["train", "--config", config,
                    "--set", "model.peft.filter.low=\(Sweep.format(low))", "--set", "model.peft.filter.high=\(Sweep.format(high))"]
        for s in sets { args += ["--set", s] }
        args += ["--work-dir", workDir]
        print("sweep: causal-tune " + args.joined(separator: " "))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        do { try p.run() } catch { throw CausalTuneError("sweep: cannot start \(exe): \(error.localizedDescription)") }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CausalTuneError("sweep: training low=\(Sweep.format(low)) high=\(Sweep.format(high)) failed (exit \(p.terminationStatus)); see \(workDir)")
        }
    }
}
