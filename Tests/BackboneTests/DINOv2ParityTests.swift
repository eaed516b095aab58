import Backbone
import Foundation
import Layers
import Numerics
import XCTest

/// The forward of every block and the frozen backward against PyTorch (timm's DINOv2
/// blocks), for every weight format, with and without registers, the SwiGLU FFN, and the
/// load-time resampling of the position grid and the patch kernel (14 → 16).
final class DINOv2ParityTests: XCTestCase {
    private let tolerance: Float = 1e-4

    /// Loads `weights` into `arch` at the reference's image and patch size, runs the
    /// reference input and compares every block's tokens.
    @discardableResult
    private func assertParity(_ weights: String, _ reference: String, _ arch: BackboneArchitecture,
                              recompute: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> (VisionTransformer, WeightFile) {
        let ref = try Fixtures.reference(reference)
        let image = Int(ref.metadata["image_size"]!)!, patch = Int(ref.metadata["patch_size"]!)!
        let model = VisionTransformer(architecture: arch, imageSize: image, patchSize: patch, recompute: recompute)
        try model.load(try BackboneWeights.read(Fixtures.path(weights)))
        model.forward(ref.tensors["input"]!)
        for i in 0..<arch.depth {
            let expected = ref.tensors["block_\(i)"]!
            XCTAssertEqual(model.output(ofBlock: i).shape, expected.shape, file: file, line: line)
            let err = relativeError(model.output(ofBlock: i), expected)
            XCTAssertLessThan(err, tolerance, "\(weights) vs ref_\(reference) block \(i): relative error \(err)", file: file, line: line)
        }
        return (model, ref)
    }

    func testEveryFormatMatchesPyTorchWithoutRegisters() throws {
        for file in ["s14.pth", "s14.safetensors", "s14_hf.safetensors", "s14.h5"] {
            try assertParity(file, "s14_56", Fixtures.s14)
        }
    }

    func testEveryFormatMatchesPyTorchWithFourRegisters() throws {
        for file in ["s14_reg4.pth", "s14_reg4_hf.safetensors", "s14_reg4_timm.safetensors"] {
            try assertParity(file, "s14_reg4_56", Fixtures.s14reg4)
        }
    }

    func testSwiGLUBlocksMatchPyTorch() throws {
        try assertParity("g14.pth", "g14_56", Fixtures.g14)
        try assertParity("g14_hf.safetensors", "g14_56", Fixtures.g14)
    }

    func testPositionGridIsResampledBicubicallyAtLoad() throws {
        // Checkpoint grid 4×4, run at 70 px → 5×5.
        let (model, _) = try assertParity("s14.pth", "s14_70", Fixtures.s14)
        XCTAssertTrue(model.grid == (5, 5))
    }

    func testOfficialHubPositionInterpolationIsAvailable() throws {
        let weights = try BackboneWeights.read(Fixtures.path("s14.pth"))
        let expected = try SafeTensors.read(Fixtures.path("ref_pos_hub_5x5.safetensors")).tensors["pos_embed"]!
        let model = VisionTransformer(architecture: Fixtures.s14, imageSize: 70)
        try model.load(weights, positionInterpolation: .officialHub)
        let err = relativeError(model.posEmbed.value, expected)
        XCTAssertLessThan(err, 1e-5, "hub interpolation relative error \(err)")
        // ... and differs from the converter's (the default).
        try model.load(weights)
        XCTAssertGreaterThan(relativeError(model.posEmbed.value, expected), 1e-3)
    }

    func testPatchKernelIsResampledTo16AsReinConverts() throws {
        let (model, _) = try assertParity("s14_hf.safetensors", "s14_p16_80", Fixtures.s14)
        XCTAssertEqual(model.patchEmbed.weight.shape, [16, 3, 16, 16])
        try assertParity("s14_reg4.pth", "s14_reg4_p16_80", Fixtures.s14reg4)
    }

    func testFrozenBackwardMatchesPyTorchInputGradient() throws {
        for (weights, reference, arch) in [("s14.pth", "s14_56", Fixtures.s14),
                                           ("s14_reg4_hf.safetensors", "s14_reg4_56", Fixtures.s14reg4)] {
            for recompute in [false, true] {
                let (model, ref) = try assertParity(weights, reference, arch, recompute: recompute)
                var grads: [Int: Tensor] = [:]
                for i in 0..<arch.depth { grads[i] = ref.tensors["dout_\(i)"]! }
                let dTokens = model.backward(outputGradients: grads)
                let err = relativeError(dTokens, ref.tensors["dtokens"]!)
                XCTAssertLessThan(err, tolerance, "\(weights) recompute=\(recompute): dL/dx0 relative error \(err)")
            }
        }
    }
}
