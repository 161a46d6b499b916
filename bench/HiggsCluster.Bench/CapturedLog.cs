using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace HiggsCluster.Bench;

/// <summary>
/// An Akka logger that keeps the coordinator host's log lines in memory (runs are sequential), so a chaos run that
/// stalls can be reported with what the coordinator said last instead of flooding the bench's own output.
/// </summary>
public sealed class CapturedLog : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private static readonly List<string> Lines = new();

    public CapturedLog()
    {
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(e =>
        {
            lock (Lines) Lines.Add($"{e.Timestamp:HH:mm:ss.fff} {e.LogLevel().ToString().Replace("Level", "")} {e.LogSource}: {e.Message}{(e.Cause is { } c ? " " + c.GetBaseException().Message : "")}");
        });
    }

    public static void Clear() { lock (Lines) Lines.Clear(); }

    public static List<string> Snapshot() { lock (Lines) return Lines.ToList(); }
}
