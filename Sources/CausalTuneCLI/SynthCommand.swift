import ArgumentParser
import Core
import Foundation
import Synthetic
import Training

/// `causal-tune synth --out DIR [--train N] [--val N] [--size WxH] [--seed S]`
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write the built-in synthetic street-scene benchmark (domains source, fog, night, rain, snow).",
        discussion: "Layout: DIR/<domain>/{images,labels}/<split>/<split>_NNNNN.png; labels are train ids. See DIR/README.txt."
    )

    @Option(help: "Output folder.") var out: String
    @Option(help: "Training scenes.") var train: Int = 200
    @Option(help: "Validation scenes.") var val: Int = 50
    @Option(help: "Image size WxH.") var size: String = "\(SyntheticBenchmark.defaultWidth)x\(SyntheticBenchmark.defaultHeight)"
    @Option(help: "Random seed.") var seed: UInt64 = 0

    func run() throws {
        do {
            let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, (16...8192).contains(parts[0]), (16...8192).contains(parts[1]) else {
                throw CausalTuneError("--size: '\(size)' is not WxH with sides 16…8192 (e.g. 256x128)")
            }
            guard train >= 0, val >= 0, train <= 1_000_000, val <= 1_000_000 else {
                throw CausalTuneError("--train/--val: scene counts must be 0…1000000, got \(train) and \(val)")
            }
            let bench = SyntheticBenchmark(width: parts[0], height: parts[1], seed: seed)
            let start = Date()
            if FileManager.default.fileExists(atPath: out) {
                try bench.write(to: out, train: train, val: val)
            } else {
                // A new folder appears only when complete (a killed synth leaves none).
                try RunBookkeeping.generateSynthetic(at: out, benchmark: bench, train: train, val: val)
            }
            print(String(format: "wrote %d train + %d val scenes x 5 domains (%dx%d) to %@ in %.1f s",
                         train, val, parts[0], parts[1], out, Date().timeIntervalSince(start)))
        } catch let e as CausalTuneError {
            e.printToStandardError()
            throw ExitCode.failure
        }
    }
}
