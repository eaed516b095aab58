import ArgumentParser
import Core
import Distributed
import Foundation
import Visualization

/// `causal-tune visualize features|bands|curves` — PNG pictures for analysis (issue 9).
struct VisualizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visualize",
        abstract: "Pictures for analysis: feature PCA maps and spectra, band energies, training curves.",
        subcommands: [Features.self, Bands.self, Curves.self]
    )

    /// Runs `body`, turning a `CausalTuneError` into one line on stderr and exit status 1.
    /// Under an MPI launcher only rank 0 draws (the pictures need no parallel work, so no
    /// rank initialises MPI); the others exit at once.
    static func reportingErrors(_ body: () throws -> Void) throws {
        if Communicator.launchedAsNonRootRank() { return }
        do { try body() } catch let e as CausalTuneError {
            e.printToStandardError()
            throw ExitCode.failure
        }
    }

    /// The dump and `--layers` that `features` and `bands` both read.
    struct DumpLayers: ParsableArguments {
        @Argument(help: "Feature dump (HDF5).") var dump: String
        @Option(parsing: .upToNextOption, help: "Block indices, e.g. 0,11 (default: every layer in the dump).") var layers: [String] = []

        /// Opens the dump (its HDF5 checked in a child process first) and the chosen layers,
        /// reporting errors as `reportingErrors` does.
        func open(_ body: (FeatureDump, [Int]?) throws -> Void) throws {
            try reportingErrors {
                try HDF5Preflight.check([.init(path: dump, kind: .dump)])
                try body(try FeatureDump(path: dump), try DumpLayers.parseLayers(layers))
            }
        }

        /// Parses `--layers 0,11` (also `0 11`).
        static func parseLayers(_ s: [String]) throws -> [Int]? {
            if s.isEmpty { return nil }
            return try s.flatMap { $0.split(separator: ",") }.map { p in
                guard let i = Int(p.trimmingCharacters(in: .whitespaces)), i >= 0 else {
                    throw CausalTuneError("--layers: '\(p)' is not a block index (expected e.g. 0,11)")
                }
                return i
            }
        }
    }

    struct Features: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "features",
            abstract: "Input | PCA(spatial) | PCA(T⁻¹(causal)) | PCA(refined) | log spectrum + mask contour, per layer and image.",
            discussion: """
            Reads a feature dump written by `causal-tune features` and writes \
            DIR/layer_<ii>_image_<b>.png per chosen layer and image, and \
            DIR/image_<b>_layers.png with all chosen layers stacked.
            """
        )
        @OptionGroup var source: DumpLayers
        @Option(help: "Output folder.") var out: String

        func run() throws {
            try source.open { d, chosen in
                let written = try FeaturePictures.write(dump: d, layers: chosen, outDir: out)
                for p in written { print(p) }
            }
        }
    }

    struct Bands: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bands",
            abstract: "Per-layer low / causal / high energy fractions: stacked bar chart PNG and a table."
        )
        @OptionGroup var source: DumpLayers
        @Option(help: "Output PNG (default: DUMP with .h5 replaced by _bands.png).") var out: String?

        func run() throws {
            try source.open { d, chosen in
                let e = try FeaturePictures.bandEnergies(dump: d, layers: chosen)
                print(FeaturePictures.bandTable(e))
                let path = out ?? ((source.dump as NSString).deletingPathExtension + "_bands.png")
                let name = (source.dump as NSString).lastPathComponent
                try FeaturePictures.bandChart(e, title: "band energy per layer (\(name))").writePNG(to: path)
                print(path)
            }
        }
    }

    struct Curves: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "curves",
            abstract: "Loss, learning rate and per-domain mIoU over steps from WORK_DIR/metrics.jsonl."
        )
        @Argument(help: "Training work directory.") var workDir: String
        @Option(help: "Output PNG (default: WORK_DIR/curves.png).") var out: String?

        func run() throws {
            try VisualizeCommand.reportingErrors {
                let m = try TrainingMetrics.load(workDir: workDir)
                if m.loss.isEmpty && m.lr.isEmpty && m.domains.isEmpty {
                    throw CausalTuneError("\((workDir as NSString).appendingPathComponent("metrics.jsonl")): no step with loss, lr or mIoU to plot")
                }
                let path = out ?? (workDir as NSString).appendingPathComponent("curves.png")
                let title = ((workDir as NSString).standardizingPath as NSString).lastPathComponent
                try CurvesPicture.render(m, title: title).writePNG(to: path)
                if let f = m.finalMeanMIoU {
                    let per = f.domains.keys.sorted().map { "\($0) \(String(format: "%.2f", 100 * f.domains[$0]!))" }.joined(separator: ", ")
                    var line = "step \(Int(f.step)): mIoU \(per); mean \(String(format: "%.2f", 100 * f.miou))"
                    if f.domains["source"] != nil, let t = m.finalMIoU(excluding: ["source"]) {
                        line += ", mean without source \(String(format: "%.2f", 100 * t.miou))"
                    }
                    print(line)
                }
                print(path)
            }
        }
    }
}
