import ArgumentParser
import Backbone
import Core
import Foundation

/// `causal-tune inspect FILE`: format, architecture, parameter count, dtypes and grid of a
/// weights file (PyTorch zip, safetensors, HDF5), a checkpoint or a feature dump.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Summarise a checkpoint, weights file or feature dump.",
        discussion: """
        The format is recognised from the file's content. For DINOv2 weights the naming \
        (official/timm or Hugging Face), the architecture, the patch size and the position-\
        embedding grid are reported; for our HDF5 files the root attributes and every dataset.
        """
    )

    @Argument(help: "The file to summarise.") var file: String

    func run() throws {
        do {
            try HDF5Preflight.check([.init(path: file, kind: .any)])
            for line in try Inspection.describe(file) { print(line) }
        } catch let e as CausalTuneError {
            e.printToStandardError()
            throw ExitCode.failure
        }
    }
}
