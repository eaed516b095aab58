// libFuzzer harness for everything that reads a file a user hands us. `launch/fuzz` builds it
// with `swift build --sanitize fuzzer --sanitize address -Xswiftc -DFUZZING` and runs one
// target at a time, chosen by CAUSAL_TUNE_FUZZ_TARGET:
//
//   pickle       the unpickler on raw bytes (the `data.pkl` of a torch.save archive)
//   pth          a whole file through the weights reader (zip archive → pickle → tensors)
//   safetensors  a whole file through the safetensors reader
//   hdf5         a whole file as HDF5 weights and as a training checkpoint (attributes,
//                parameters, moments)
//   image        a whole file as an RGB image (PNG or JPEG) and as a PNG label map
//   config       the bytes as a YAML experiment config
//
// A target must never crash: every bad input is a thrown error. Without -DFUZZING this
// builds a small executable that says how to use it (so `swift build` of the package works,
// in release mode too, where `@testable import` is not available).
#if FUZZING
@testable import Backbone
import Data
import Foundation
import Logging
import ImageIO
import Numerics
import Training

enum FuzzHarness {
    static let target = ProcessInfo.processInfo.environment["CAUSAL_TUNE_FUZZ_TARGET"] ?? "pickle"
    static let scratch = NSTemporaryDirectory() + "causal-tune-fuzz-\(getpid())"
    nonisolated(unsafe) static var prepared = false

    /// The trainable set a fuzzed checkpoint is loaded into.
    nonisolated(unsafe) static var parameters: ParameterSet = {
        ParameterSet([(name: "peft/scale", value: Tensor(zeros: [1]), grad: Tensor(zeros: [1])),
                      (name: "head/linear/weight", value: Tensor(zeros: [19, 8]), grad: Tensor(zeros: [19, 8]))])
    }()

    static func file(_ data: UnsafeRawBufferPointer, _ name: String) -> String {
        if !prepared {
            try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            setenv("CAUSAL_TUNE_MAX_IMAGE_PIXELS", "4000000", 1)   // keep each run small under ASan
            LabelValueReport.logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }
            prepared = true
        }
        let path = scratch + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(data))
        return path
    }

    static func run(_ data: UnsafeRawBufferPointer) {
        switch target {
        case "pickle":
            var unpickler = Unpickler(Array(data))
            _ = try? unpickler.load()
        case "pth":
            _ = try? PyTorchCheckpoint.read(file(data, "w.pth"))
        case "safetensors":
            _ = try? SafeTensors.read(file(data, "w.safetensors"))
        case "hdf5":
            let path = file(data, "w.h5")
            _ = try? HDF5Weights.read(path)
            if let reader = try? Checkpoint.Reader(path: path) {
                _ = try? reader.requireResumable()
                _ = try? reader.loadParameters(into: parameters)
                _ = try? reader.loadOptimizer(into: Optimizer(.adamw, parameters: parameters))
            }
        case "image":
            let path = file(data, "i.img")
            _ = try? ImageIO.readRGB(path)
            _ = try? ImageIO.readLabels(path)
        case "config":
            _ = try? ExperimentConfig.parse(yaml: String(decoding: data, as: UTF8.self), source: "fuzz.yaml")
        default:
            FileHandle.standardError.write(Data("unknown CAUSAL_TUNE_FUZZ_TARGET \(target)\n".utf8))
            exit(2)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzHarness.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
@main
struct FuzzReadersUsage {
    static func main() {
        print("fuzz-readers: a libFuzzer harness; build and run it with launch/fuzz")
    }
}
#endif
