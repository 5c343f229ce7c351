%%% @doc Files the agent must never leave half-written (the command journal,
%%% rewritten relups): write a temporary file beside the target, flush it to
%%% disk, rename it over the target. A crash leaves the old or the new file.
-module(beamdeck_agent_file).

-export([atomic_write/2]).

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
