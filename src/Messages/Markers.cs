namespace HiggsCluster.Messages;

/// <summary>Small protocol messages; bound to Hyperion so nothing falls through to the slow JSON default.</summary>
public interface IControlMessage;

/// <summary>Messages carrying tensors or batches; bound to <see cref="Serialization.BulkSerializer"/>.</summary>
public interface IBulkMessage;
