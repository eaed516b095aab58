import ArgumentParser
import BLASKernelChoice
import Core
import Foundation
import Numerics
import RunIO

/// `causal-tune`: fine-tunes a frozen DINOv2 with Causal-Tune for domain-generalized
/// semantic segmentation. Subcommands live one per file beside this one.
@main
struct CausalTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "causal-tune",
        abstract: "Causal-Tune: frequency-domain PEFT of a frozen vision foundation model (DINOv2, EVA02, CLIP) for domain-generalized segmentation.",
        discussion: """
        Train data-parallel with `mpirun -np N causal-tune train --config FILE`; debug in one \
        process with the same command without mpirun. See README.md and configs/.
        """,
        version: CausalTuneVersion.string,
        subcommands: [ScoreCommand.self, SynthCommand.self, VisualizeCommand.self, SweepCommand.self,
                      FeaturesCommand.self, InspectCommand.self, BackboneBenchCommand.self, BenchCommand.self,
                      TrainCommand.self, EvaluateCommand.self, PredictCommand.self, ExportCommand.self, ConfigCommand.self,
                      CheckHDF5Command.self]
    )

    /// Every module's swift-log `Logger` writes to the running command's log. OpenBLAS's
    /// kernels were chosen before this runs (`BLASKernelChoice`, which may have re-executed the
    /// program with `OPENBLAS_CORETYPE` set); the choice is recorded here.
    /// The partition width and the product kernel are read here, before any product, so that a bad value is one
    /// line and a non-zero exit rather than a run with other bits than the user asked for.
    static func main() {
        RunLog.bootstrapLogging()
        BLAS.kernelChosenAtStart = ct_blas_kernel_chosen_at_start().map { String(cString: $0) }
        let environment = ProcessInfo.processInfo.environment
        for problem in [ProductTiling.configureFromEnvironment(environment),
                        PanelProduct.configureFromEnvironment(environment)].compactMap({ $0 }) {
            CausalTuneError(problem).printToStandardError()
            Foundation.exit(2)
        }
        main(nil)
    }
}
