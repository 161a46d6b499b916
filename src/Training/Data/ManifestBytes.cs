namespace HiggsCluster.Training.Data;

/// <summary>
/// The unread bytes of a manifest stream in one growing buffer, with the line number of the first of them. An entry is
/// kept whole only while it is within the per-entry limit; past it, its bytes are dropped as they are skipped, so one
/// 100 MB line costs a buffer of the limit, not gigabytes.
/// </summary>
internal sealed class ManifestBytes(Stream stream)
{
    private byte[] _buffer = new byte[1 << 16];
    private int _start, _length;

    public bool Final { get; private set; }

    /// <summary>1-based line of the first unread byte.</summary>
    public long Line { get; private set; } = 1;

    public ReadOnlySpan<byte> Unread => _buffer.AsSpan(_start, _length - _start);

    public int Count => _length - _start;

    /// <summary>Reads more bytes (growing the buffer when it is full); false at the end of the stream.</summary>
    public bool Fill()
    {
        if (Final) return false;
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _length - _start);
            _length -= _start;
            _start = 0;
        }
        if (_length == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
        int n = stream.Read(_buffer, _length, _buffer.Length - _length);
        if (n == 0) { Final = true; return false; }
        _length += n;
        return true;
    }

    /// <summary>Marks <paramref name="n"/> bytes read, counting the lines they end.</summary>
    public void Advance(int n)
    {
        Line += _buffer.AsSpan(_start, n).Count((byte)'\n');
        _start += n;
    }

    /// <summary>A copy of the first <paramref name="n"/> unread bytes, then <see cref="Advance"/>.</summary>
    public byte[] Take(int n)
    {
        var copy = _buffer.AsSpan(_start, n).ToArray();
        Advance(n);
        return copy;
    }

    /// <summary>Skips whitespace; false at the end of the stream.</summary>
    public bool SkipWhitespace()
    {
        while (true)
        {
            var span = Unread;
            int i = 0;
            while (i < span.Length && span[i] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') i++;
            Advance(i);
            if (Count > 0) return true;
            if (!Fill()) return false;
        }
    }
}

/// <summary>
/// Finds where one JSON value ends without validating it: brackets are counted outside strings, a string ends at its
/// unescaped quote, a bare scalar at a delimiter. A malformed element (a bad literal, invalid UTF-8 in a string, a
/// missing comma inside it) is still delimited, so the reader can report it and go on with the next one.
/// </summary>
internal struct JsonValueScanner
{
    private int _depth;
    private bool _inString, _escape, _started, _scalar;

    public bool Done { get; private set; }

    /// <summary>How many bytes of <paramref name="data"/> belong to the value; <see cref="Done"/> once it has ended.</summary>
    public int Scan(ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            byte b = data[i];
            if (!_started)
            {
                _started = true;
                if (b == '"') { _inString = true; continue; }
                if (b is (byte)'{' or (byte)'[') { _depth = 1; continue; }
                _scalar = true;
                continue;
            }
            if (_inString)
            {
                if (_escape) _escape = false;
                else if (b == '\\') _escape = true;
                else if (b == '"')
                {
                    _inString = false;
                    if (_depth == 0) { Done = true; return i + 1; }
                }
                continue;
            }
            if (_scalar)
            {
                if (b is (byte)',' or (byte)']' or (byte)'}' or (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') { Done = true; return i; }
                continue;
            }
            if (b == '"') _inString = true;
            else if (b is (byte)'{' or (byte)'[') _depth++;
            else if (b is (byte)'}' or (byte)']' && --_depth == 0) { Done = true; return i + 1; }
        }
        return data.Length;
    }

    /// <summary>A bare scalar is complete at the end of the stream; anything else is truncated.</summary>
    public void EndOfStream()
    {
        if (_scalar) Done = true;
    }
}
