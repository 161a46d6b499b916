using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Faults;

namespace HiggsCluster.GpuWorker.Run;

/// <summary>
/// What <see cref="WorkerRun"/> is told that is not a cluster message: timers, membership, and the results of the I/O it
/// asked for (the actor runs the engine and the communicator, then feeds their outcome back).
/// </summary>
public abstract record WorkerInput;
public sealed record RegisterTick : WorkerInput;
public sealed record LoaderUp(string Address) : WorkerInput;
public sealed record LoaderGone(string Address) : WorkerInput;
/// <summary>The communicator of <see cref="Generation"/> is formed (<see cref="Error"/> null) or could not be.</summary>
public sealed record CommunicatorReady(long Generation, string? Error) : WorkerInput;
public sealed record NcclIdNotCreated(string RunId, long Generation, string Error) : WorkerInput;
public sealed record ReduceFinished(long Generation, long Step, string? Error) : WorkerInput;
public sealed record MicroStepDone(long Step, int Micro, double Loss) : WorkerInput;
public sealed record OptimizerDone(long Step) : WorkerInput;
public sealed record StateImported(string RunId, long Step) : WorkerInput;
public sealed record CheckpointLoaded(string RunId, long Step, string? Path, long Millis) : WorkerInput;
/// <summary>Importing a hand-over or loading a checkpoint threw.</summary>
public sealed record LoadFailed(string RunId, long Step, string Reason) : WorkerInput;
/// <summary>A cluster message (<see cref="AllReduceGroup"/>, <see cref="StartStep"/>, <see cref="BatchDelivery"/>, ...).</summary>
public sealed record Received(object Message) : WorkerInput;

/// <summary>What the actor does for <see cref="WorkerRun"/>: messages to send, engine and communicator calls to make.</summary>
public abstract record WorkerRunEffect;
public sealed record ToCoordinator(object Message) : WorkerRunEffect;
/// <summary>Answer the sender of the message being handled (a loader).</summary>
public sealed record ToSender(object Message) : WorkerRunEffect;
public sealed record ToLoader(string Address, BatchDemand Demand) : WorkerRunEffect;
public sealed record Register(string? RunId, long AppliedSteps) : WorkerRunEffect;
public sealed record Communicator(FormationEffect Formation) : WorkerRunEffect;
/// <summary>Keep the communicator that just became ready (false: it belongs to a past generation, abort it).</summary>
public sealed record TakeCommunicator(bool Keep) : WorkerRunEffect;
public sealed record StartAllReduce(long Generation, long Step) : WorkerRunEffect;
public sealed record RunMicro(BatchDelivery Batch, int World) : WorkerRunEffect;
public sealed record RunOptimizer(long Step, double[] Totals, bool Lead) : WorkerRunEffect;
public sealed record ReportStepDone(string RunId, long Generation, long Step, int Rank) : WorkerRunEffect;
public sealed record DiscardStepGradients : WorkerRunEffect;
public sealed record SendState(HandOverTo Request) : WorkerRunEffect;
public sealed record ImportState(string RunId, long Step, NamedTensor[] State) : WorkerRunEffect;
public sealed record LoadCheckpoint(RestoreCheckpoint Request) : WorkerRunEffect;
public sealed record InjectFault(FaultPoint Point, long Step) : WorkerRunEffect;
public enum Level { Info, Warning, Error }
public sealed record Log(Level Level, string Text) : WorkerRunEffect;
