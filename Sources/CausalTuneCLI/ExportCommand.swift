import ArgumentParser
import Backbone
import Core
import Distributed
import Foundation
import Numerics
import Training

/// `causal-tune export --checkpoint CKPT --format mmseg|safetensors --out FILE`
///
/// Writes the trainable parameters of our HDF5 checkpoint under Rein's / mmseg's names
/// (`ReinCheckpoint`): `mmseg` gives a `torch.save` file `{'meta': {…}, 'state_dict':
/// OrderedDict}` that `torch.load(path, weights_only=True)` reads and whose state dict
/// loads with `strict=True` into Rein's `Reins` / `LoRAReins` (keys below `backbone.reins.`)
/// and the Mask2Former head (keys below `decode_head.`); `safetensors` the same tensors
/// and names in one `.safetensors` file. Values are the float32 values bit for bit; the
/// scalar `scale` becomes the 0-d tensor Rein's module holds.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's trainable parameters for PyTorch (Rein / mmseg names): .pth or .safetensors.",
        discussion: """
        --format mmseg writes a torch.save file ({'meta': …, 'state_dict': …}) that loads with \
        torch.load(FILE, weights_only=True) and, with strict=True, into Rein's modules \
        (backbone.reins.* for Reins / LoRAReins, decode_head.* for the Mask2Former head); \
        --format safetensors writes the same tensors and names. The frozen backbone is not \
        included (Rein's checkpoints do not hold it either). Runs in one process.
        """
    )

    @Option(help: "Our checkpoint (HDF5).") var checkpoint: String
    @Option(help: ArgumentHelp("Output format: mmseg (.pth) or safetensors.", valueName: "mmseg|safetensors"))
    var format: String
    @Option(help: "Output file.") var out: String

    func run() throws {
        if Communicator.launchedAsNonRootRank() { return }
        do {
            guard format == "mmseg" || format == "safetensors" else {
                throw CausalTuneError("--format: '\(format)' is not mmseg or safetensors")
            }
            if ReinCheckpoint.handles(checkpoint) {
                throw CausalTuneError("--checkpoint \(checkpoint): already a PyTorch / safetensors file; export reads our HDF5 checkpoint")
            }
            try HDF5Preflight.check(.checkpoint(checkpoint))
            let reader = try Checkpoint.Reader(path: checkpoint)
            let names = try reader.parameterNames()
            guard !names.isEmpty else { throw CausalTuneError("\(checkpoint): no /params to export") }
            // Rein's order: the PEFT module, then the head.
            let ordered = names.filter { $0.hasPrefix("peft/") } + names.filter { !$0.hasPrefix("peft/") }
            var tensors: [(name: String, value: Tensor, shape: [Int])] = []
            var seen: [String: String] = [:]
            for n in ordered {
                let t = try reader.parameter(n)
                let r = ReinCheckpoint.reinName(for: n)
                if let other = seen[r] { throw CausalTuneError("\(checkpoint): /params/\(n) and /params/\(other) both map to '\(r)'") }
                seen[r] = n
                tensors.append((r, t, ReinCheckpoint.reinShape(for: n, shape: t.shape)))
            }
            let sig = reader.metadata.signature
            let method = sig?.peftMethod ?? "unknown"
            let stepText = "\(reader.metadata.step)"
            switch format {
            case "mmseg":
                var meta: [(String, PickleOut)] = [
                    ("exported_by", .string("causal-tune \(CausalTuneVersion.string)")),
                    ("source", .string(checkpoint)),
                    ("iter", .int(reader.metadata.step)),
                    ("peft_method", .string(method)),
                ]
                if let sig { meta.append(("arch", .string(sig.arch))) }
                try TorchCheckpointWriter.write(stateDict: tensors, meta: meta, to: out)
            default:
                var meta = ["exported_by": "causal-tune \(CausalTuneVersion.string)", "step": stepText, "peft_method": method]
                if let sig { meta["arch"] = sig.arch }
                try SafeTensorsWriter.write(tensors, metadata: meta, to: out)
            }
            let count = tensors.reduce(0) { $0 + $1.value.count }
            print("export: \(tensors.count) tensors (\(count) values) from \(checkpoint) → \(out) (\(format))")
            if method != "rein" && method != "none" && method != "unknown" {
                print("note: the checkpoint was trained with peft.method \(method); Rein's own module computes Rein's layer with these values")
            }
        } catch let e as CausalTuneError {
            e.printToStandardError()
            throw ExitCode.failure
        }
    }
}
