%%% @doc Files the agent must never leave half-written (the command journal,
%%% rewritten relups): write a temporary file beside the target, flush it to
%%% disk, rename it over the target. A crash leaves the old or the new file.
%%% And the agent's small term files (the fallback record and its outcome
%%% journal): one `{Tag, Version, Body}' term under a header, written so,
%%% an unreadable one set aside rather than stopping the agent.
-module(beamdeck_agent_file).

-export([atomic_write/2, write_term/3, delete/1, set_aside/3]).

%% @doc Replace `File' with `Data' atomically; `{error, Reason}' (a
%% `file:format_error/1' reason) leaves the old file untouched.
-spec atomic_write(File, Data) -> ok | {error, Reason}
    when File :: file:filename(), Data :: iodata(), Reason :: term().
atomic_write(File, Data) ->
    Tmp = File ++ ".tmp-" ++ os:getpid(),
    Result = case filelib:ensure_dir(File) of
                 ok -> write_synced(Tmp, Data);
                 {error, _} = E -> E
             end,
    case Result of
        ok -> file:rename(Tmp, File);
        {error, _} = Err ->
            _ = file:delete(Tmp),
            Err
    end.

write_synced(Tmp, Data) ->
    case file:open(Tmp, [write, raw, binary]) of
        {ok, Fd} ->
            R1 = file:write(Fd, Data),
            R2 = file:sync(Fd),
            ok = file:close(Fd),
            case {R1, R2} of
                {ok, ok} -> ok;
                {{error, _} = E, _} -> E;
                {_, E} -> E
            end;
        {error, _} = E -> E
    end.

%% @doc Write `Term' (printed, after the `%%' comment `Header') to `File'
%% as `atomic_write/2' does; the error names the file.
-spec write_term(File, Header, Term) -> ok | {error, binary()}
    when File :: string(), Header :: string(), Term :: term().
write_term(File, Header, Term) ->
    Text = io_lib:format("%% ~ts~n%% Written by the agent; do not edit.~n~tp.~n", [Header, Term]),
    case atomic_write(File, unicode:characters_to_binary(Text)) of
        ok -> ok;
        {error, R} -> {error, reason(File, R)}
    end.

%% @doc Remove `File' (absent is fine); the error names the file.
-spec delete(File) -> ok | {error, binary()} when File :: string().
delete(File) ->
    case file:delete(File) of
        ok -> ok;
        {error, enoent} -> ok;
        {error, R} -> {error, reason(File, R)}
    end.

%% @doc An unreadable `File' (`What' it is, `Why' from file:consult/1) is
%% kept aside as `….bad' and logged: the caller reads it as absent.
-spec set_aside(File, What, Why) -> ok when File :: string(), What :: string(), Why :: term().
set_aside(File, What, Why) ->
    logger:warning("beamdeck agent: unreadable ~ts ~ts (~0tp); kept as ~ts.bad", [What, File, Why, File]),
    _ = file:rename(File, File ++ ".bad"),
    ok.

reason(File, R) ->
    unicode:characters_to_binary(io_lib:format("~ts: ~ts", [File, file:format_error(R)])).
