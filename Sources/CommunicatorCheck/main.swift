/// communicator-check: run under `mpirun -np N` (or alone) to check the collectives.
///
/// Every rank fills buffers from its rank, runs all-reduce (sum and mean; Float, Double,
/// Int64, chunked), broadcast (scalars, arrays, a string) and all-gather, compares with the
/// closed-form results and prints ONE line:
///
///     communicator-check rank R/P local L/S: sum=… mean=… … OK
///
/// or `… MISMATCH: <what>` and exits 1 (after every rank has printed).
///
/// `communicator-check --fail-on-rank K`: rank K throws inside `Communicator.run` while the
/// others wait in a barrier; the job must end with a non-zero status instead of hanging.
/// `--exit-on-rank K`: the same with a plain `exit(1)` (no explicit abort).
import Core
import Distributed
import Foundation
import Numerics

let comm = Communicator.make()
let arguments = CommandLine.arguments
if let flag = arguments.firstIndex(of: "--fail-on-rank"), flag + 1 < arguments.count, let failing = Int(arguments[flag + 1]) {
    comm.run {
        if comm.rank == failing { throw CausalTuneError("deliberate failure on rank \(comm.rank)") }
        comm.barrier()
        print("communicator-check rank \(comm.rank): passed the barrier (should not happen)")
    }
}
if let flag = arguments.firstIndex(of: "--exit-on-rank"), flag + 1 < arguments.count, let failing = Int(arguments[flag + 1]) {
    if comm.rank == failing {
        print("communicator-check rank \(comm.rank): exit(1) without abort")
        exit(1)
    }
    comm.barrier()
    print("communicator-check rank \(comm.rank): passed the barrier (should not happen)")
    exit(0)
}
let r = comm.rank
let p = comm.size
var failures: [String] = []
@MainActor func check(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { failures.append(what()) } }

// Float sum and mean: element i on rank r is (r + 1) · (i + 1).
// Σ_r (r+1)(i+1) = (i+1) · P(P+1)/2.
let n = 37
let triangle = Float(p * (p + 1) / 2)
let sumTensor = Tensor(shape: [n], values: (0..<n).map { Float((r + 1) * ($0 + 1)) })
comm.allReduceSum(sumTensor)
check(sumTensor.array == (0..<n).map { Float($0 + 1) * triangle }, "Float sum \(sumTensor.array.prefix(3))")

let meanTensor = Tensor(shape: [n], values: (0..<n).map { Float((r + 1) * ($0 + 1)) })
comm.allReduceMean(meanTensor)
let meanExpected = (0..<n).map { Float($0 + 1) * triangle / Float(p) }
check(zip(meanTensor.array, meanExpected).allSatisfy { abs($0 - $1) <= 1e-5 * abs($1) }, "Float mean \(meanTensor.array.prefix(3))")

// Chunked: force 7 elements per MPI call on a 100-element buffer.
let savedChunk = Communicator.maxElementsPerCall
Communicator.maxElementsPerCall = 7
var chunked = (0..<100).map { Float($0 * (r + 1)) }
comm.allReduceSum(&chunked)
check(chunked == (0..<100).map { Float($0) * triangle }, "chunked Float sum \(chunked.prefix(3))")
var chunkedBroadcast = (0..<100).map { Float(r == 0 ? $0 : -1) }
chunkedBroadcast.withUnsafeMutableBufferPointer { comm.broadcast($0) }
check(chunkedBroadcast == (0..<100).map { Float($0) }, "chunked broadcast")
Communicator.maxElementsPerCall = savedChunk

// Double and Int64 sums (confusion matrices).
var doubles = [Double(r) + 0.25, 1e15 * Double(r + 1)]
comm.allReduceSum(&doubles)
check(doubles == [Double(p * (p - 1) / 2) + 0.25 * Double(p), 1e15 * Double(triangle)], "Double sum \(doubles)")
var counts: [Int64] = [Int64(r), 1, 3_000_000_000]
comm.allReduceSum(&counts)
check(counts == [Int64(p * (p - 1) / 2), Int64(p), 3_000_000_000 * Int64(p)], "Int64 sum \(counts)")
let maximum = comm.allReduceMax(Double(r))
check(maximum == Double(p - 1), "max \(maximum)")
check(comm.any(r == p - 1) && !comm.any(false), "any")

// Broadcast from rank 0 (and from the last rank).
let config = r == 0 ? "model:\n  backbone: {arch: dinov2_vits14}  # ünïcode ✓\n" : "wrong"
let received = comm.broadcast(config)
check(received == "model:\n  backbone: {arch: dinov2_vits14}  # ünïcode ✓\n", "String broadcast '\(received)'")
let f = comm.broadcast(r == 0 ? Float(1.5) : 0)
let d = comm.broadcast(r == 0 ? Double.pi : 0)
let i = comm.broadcast(r == 0 ? Int64(-1) << 40 : 0)
let u = comm.broadcast(r == 0 ? UInt64.max - 3 : 0)
let fromLast = comm.broadcast(Int64(r * 10), root: p - 1)
check(f == 1.5 && d == Double.pi && i == -1 << 40 && u == UInt64.max - 3 && fromLast == Int64((p - 1) * 10),
      "scalar broadcast \(f) \(d) \(i) \(u) \(fromLast)")
let state = comm.broadcast(r == 0 ? [UInt64(1), 2, UInt64.max] : [])
check(state == [1, 2, UInt64.max], "UInt64 array broadcast \(state)")

// All-gather.
let gathered = comm.allGather(r * r)
check(gathered == (0..<p).map { $0 * $0 }, "allGather \(gathered)")

comm.barrier()
let status = failures.isEmpty ? "OK" : "MISMATCH: " + failures.joined(separator: "; ")
print("communicator-check rank \(r)/\(p) local \(comm.localRank)/\(comm.localSize): "
      + "sum=\(sumTensor[n - 1]) mean=\(meanTensor[n - 1]) int64=\(counts[2]) bcast=\(d) gather=\(gathered) \(status)")
fflush(nil)
comm.barrier()
if failures.isEmpty { comm.finish() }
comm.abort(code: 1)
