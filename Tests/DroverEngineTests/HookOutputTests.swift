import DroverBasics
import DroverEngine
import Testing

/// A hook or check that prints without end costs a bounded read: its output is cut to the last
/// 4 MiB (the lines that explain a failure).
@Suite struct HookOutputTests {
  @Test func aHooksOutputKeepsItsEndAndIsBounded() {
    let result = HookRunner.run(["/bin/sh", "-c", "head -c 6000000 /dev/zero | tr '\\0' a; echo THE-END"], timeout: 30)
    #expect(result.status == 0)
    #expect(result.output.utf8.count <= ChildProcess.hookOutputLimit && result.output.hasSuffix("THE-END\n"), "\(result.output.utf8.count)")
  }
}
