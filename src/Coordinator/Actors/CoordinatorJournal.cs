using Akka.Hosting;
using Akka.Persistence.Sql;

namespace HiggsCluster.Coordinator.Actors;

/// <summary>Where the coordinator journals its runs.</summary>
public enum JournalKind
{
    /// <summary>
    /// In memory, snapshots included: nothing survives the coordinator node and nothing is written to disk (single-node
    /// use, the in-process cluster of `higgs train`, tests).
    /// </summary>
    Memory,
    /// <summary>One SQLite file per cluster (the embedded default); put it on storage every coordinator node sees.</summary>
    Sqlite,
    /// <summary>A PostgreSQL database (real clusters): <see cref="CoordinatorJournal.Connection"/> is an Npgsql connection string.</summary>
    PostgreSql,
}

/// <summary>
/// The coordinator's journal (Akka.Persistence.Sql through linq2db). It is configured by HOCON because
/// Akka.Persistence.Sql.Hosting, which has the typed options, is only served at 1.5.70 and every Akka package here is
/// 1.5.73: <see cref="ToHocon"/> writes exactly the keys the README lists.
/// </summary>
public sealed record CoordinatorJournal
{
    public JournalKind Kind { get; init; } = JournalKind.Memory;
    /// <summary>SQLite: the database file. PostgreSQL: the connection string.</summary>
    public string? Connection { get; init; }

    public static CoordinatorJournal InMemory { get; } = new();
    public static CoordinatorJournal SqliteFile(string path) => new() { Kind = JournalKind.Sqlite, Connection = path };

    /// <summary>linq2db provider names (LinqToDB.ProviderName).</summary>
    public string ProviderName => Kind switch
    {
        JournalKind.Sqlite => "SQLite.MS",
        JournalKind.PostgreSql => "PostgreSQL.15",
        _ => "",
    };

    public CoordinatorJournal Validate()
    {
        switch (Kind)
        {
            case JournalKind.Memory: return this;
            case JournalKind.Sqlite:
                if (string.IsNullOrWhiteSpace(Connection)) throw new ArgumentException("coordinator journal: the SQLite file path is empty");
                var dir = Path.GetDirectoryName(Path.GetFullPath(Connection));
                if (dir is not null && !Directory.Exists(dir))
                    throw new ArgumentException($"coordinator journal: folder {dir} of the SQLite file does not exist");
                return this;
            case JournalKind.PostgreSql:
                if (string.IsNullOrWhiteSpace(Connection)) throw new ArgumentException("coordinator journal: the PostgreSQL connection string is empty");
                return this;
            default: throw new ArgumentException($"coordinator journal: unknown kind {Kind}");
        }
    }

    public string ConnectionString => Kind == JournalKind.Sqlite ? $"Data Source={Path.GetFullPath(Connection!)}" : Connection ?? "";

    /// <summary>
    /// The journal and snapshot-store keys. In memory both plugins are named too: Akka's default snapshot store is a
    /// folder (<c>snapshots/</c>) in the working directory, which a local `higgs train` would otherwise leave behind.
    /// </summary>
    public string ToHocon()
    {
        if (Kind == JournalKind.Memory)
            return @"akka.persistence.journal.plugin = ""akka.persistence.journal.inmem""
akka.persistence.snapshot-store.plugin = ""akka.persistence.snapshot-store.inmem""";
        var cs = Quote(ConnectionString);
        var provider = Quote(ProviderName);
        return $@"akka.persistence.journal.plugin = ""akka.persistence.journal.sql""
akka.persistence.journal.sql.connection-string = {cs}
akka.persistence.journal.sql.provider-name = {provider}
akka.persistence.journal.sql.auto-initialize = on
akka.persistence.snapshot-store.plugin = ""akka.persistence.snapshot-store.sql""
akka.persistence.snapshot-store.sql.connection-string = {cs}
akka.persistence.snapshot-store.sql.provider-name = {provider}
akka.persistence.snapshot-store.sql.auto-initialize = on";
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>Adds the keys, with the plugin's own defaults behind them.</summary>
    public AkkaConfigurationBuilder AddTo(AkkaConfigurationBuilder b)
    {
        if (Validate().Kind == JournalKind.Memory) return b.AddHocon(ToHocon(), HoconAddMode.Prepend);
        return b.AddHocon(ToHocon(), HoconAddMode.Prepend).AddHocon(SqlPersistence.DefaultConfiguration, HoconAddMode.Append);
    }
}
