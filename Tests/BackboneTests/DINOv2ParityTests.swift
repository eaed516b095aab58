import Backbone
import Foundation
import Layers
import XCTest

/// The forward of every block and the frozen backward against PyTorch (timm's DINOv2
/// blocks), for every weight format, with and without registers, the SwiGLU FFN, and the
/// load-time resampling of the position grid and the patch kernel (14 → 16).
final class DINOv2ParityTests: XCTestCase {
    func testEveryFormatMatchesPyTorchWithoutRegisters() throws {
        for file in ["s14.pth", "s14.safetensors", "s14_hf.safetensors", "s14.h5"] {
            try Fixtures.assertParity(file, "s14_56", Fixtures.s14)
        }
    }

    func testEveryFormatMatchesPyTorchWithFourRegisters() throws {
        for file in ["s14_reg4.pth", "s14_reg4_hf.safetensors", "s14_reg4_timm.safetensors"] {
            try Fixtures.assertParity(file, "s14_reg4_56", Fixtures.s14reg4)
        }
    }

    func testSwiGLUBlocksMatchPyTorch() throws {
        try Fixtures.assertParity("g14.pth", "g14_56", Fixtures.g14)
        try Fixtures.assertParity("g14_hf.safetensors", "g14_56", Fixtures.g14)
    }

    func testPositionGridIsResampledBicubicallyAtLoad() throws {
        // Checkpoint grid 4×4, run at 70 px → 5×5.
        let (model, _) = try Fixtures.assertParity("s14.pth", "s14_70", Fixtures.s14)
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
        let (model, _) = try Fixtures.assertParity("s14_hf.safetensors", "s14_p16_80", Fixtures.s14)
        XCTAssertEqual(model.patchEmbed.weight.shape, [16, 3, 16, 16])
        try Fixtures.assertParity("s14_reg4.pth", "s14_reg4_p16_80", Fixtures.s14reg4)
    }

    func testFrozenBackwardMatchesPyTorchInputGradient() throws {
        for (weights, reference, arch) in [("s14.pth", "s14_56", Fixtures.s14),
                                           ("s14_reg4_hf.safetensors", "s14_reg4_56", Fixtures.s14reg4)] {
            try Fixtures.assertFrozenBackward(weights, reference, arch)
        }
    }
}
