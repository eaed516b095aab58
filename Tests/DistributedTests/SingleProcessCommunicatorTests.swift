import Distributed
import Foundation
import Numerics
import XCTest

final class SingleProcessCommunicatorTests: XCTestCase {
    func testFactoryChoosesSingleProcessWithoutALauncher() {
        let comm = Communicator.make(environment: ["PATH": "/usr/bin"])
        XCTAssertTrue(comm is SingleProcessCommunicator)
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.size, 1)
        XCTAssertEqual(comm.localRank, 0)
        XCTAssertEqual(comm.localSize, 1)
        XCTAssertTrue(comm.isRoot)
        XCTAssertFalse(comm.isDistributed)
        XCTAssertGreaterThanOrEqual(comm.threadsPerRank, 1)
    }

    func testLauncherDetectionReadsOpenMPIAndPMIVariables() {
        XCTAssertFalse(Communicator.launchedByMPI(environment: [:]))
        XCTAssertTrue(Communicator.launchedByMPI(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(Communicator.launchedByMPI(environment: ["PMI_SIZE": "4"]))
        XCTAssertTrue(Communicator.launchedByMPI(environment: ["PMIX_RANK": "0"]))
        XCTAssertFalse(Communicator.launchedAsNonRootRank(environment: [:]))
        XCTAssertFalse(Communicator.launchedAsNonRootRank(environment: ["OMPI_COMM_WORLD_RANK": "0"]))
        XCTAssertTrue(Communicator.launchedAsNonRootRank(environment: ["OMPI_COMM_WORLD_RANK": "1"]))
        XCTAssertTrue(Communicator.launchedAsNonRootRank(environment: ["PMI_RANK": "3"]))
    }

    func testCollectivesOverOneRankAreTheIdentity() {
        let comm = SingleProcessCommunicator()
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        comm.allReduceSum(t)
        XCTAssertEqual(t.array, [1, 2, 3, 4, 5, 6])
        comm.allReduceMean(t)
        XCTAssertEqual(t.array, [1, 2, 3, 4, 5, 6])
        var d = [0.5, -2.0]
        comm.allReduceSum(&d)
        XCTAssertEqual(d, [0.5, -2.0])
        var i: [Int64] = [7, 3_000_000_000]
        comm.allReduceSum(&i)
        XCTAssertEqual(i, [7, 3_000_000_000])
        XCTAssertEqual(comm.allReduceSum(2.5), 2.5)
        XCTAssertEqual(comm.allReduceMax(Int64(4)), 4)
        XCTAssertTrue(comm.any(true))
        XCTAssertFalse(comm.any(false))
        XCTAssertEqual(comm.broadcast("config: ✓"), "config: ✓")
        XCTAssertEqual(comm.broadcast(Float(1.25)), 1.25)
        XCTAssertEqual(comm.broadcast(UInt64.max), UInt64.max)
        XCTAssertEqual(comm.broadcast([UInt64(9), 8]), [9, 8])
        XCTAssertEqual(comm.allGather(42), [42])
        XCTAssertEqual(comm.allGather(0.5), [0.5])
        comm.barrier()
    }
}
