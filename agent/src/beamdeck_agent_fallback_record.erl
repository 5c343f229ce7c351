%%% @doc The fallback record: what an install with a fallback timer must
%%% undo, kept in a file that survives a node restart, and the one decision
%%% of what to do with it given the release statuses and the wall clock.
%%%
%%% The record holds the installed release (`vsn'), the release it came from
%%% (`from', the permanent one), the deadline (wall clock, ms since the
%%% epoch: it must hold across a node restart, where a monotonic clock
%%% starts again) and the rollback plan's digest with the gate the fallback
%%% rolls back under (`maxKills', `acceptFindings': the armed plan's kill
%%% count and error findings). The file (`beamdeck_agent_fallback.term')
%%% sits beside the command journal (beamdeck_agent_journal:default_dir/0)
%%% and is replaced by write-then-rename with the data synced first.
-module(beamdeck_agent_fallback_record).

-export([read/1, write/2, delete/1, file/1, decide/3, json/1]).

-define(RECORD_FILE, "beamdeck_agent_fallback.term").
-define(TAG, beamdeck_agent_fallback).
-define(VERSION, 1).

-type fallback() :: #{vsn := binary(), from := binary(), deadline := integer(),
                    durationMs := pos_integer(), commandId := binary(), armedAt := integer(),
                    rollbackDigest := binary() | null, maxKills := non_neg_integer() | null,
                    acceptFindings := [binary()]}.
-type decision() :: fire | {wait, Ms :: pos_integer()} | {clear, made_permanent}
                  | {clear, {not_running, VsnStatus :: atom(), Running :: string() | undefined,
                             Permanent :: string() | undefined}}.
-export_type([fallback/0, decision/0]).

%% @doc The record file's path in `Dir'.
-spec file(Dir) -> string() when Dir :: string().
file(Dir) -> filename:join(Dir, ?RECORD_FILE).

%% @doc The record in `Dir': `none' when there is none; an unreadable file
%% is kept aside as `….bad' (logged) and reads as none: a fallback the
%% agent cannot read must not stop the agent.
-spec read(Dir) -> {ok, fallback()} | none when Dir :: string().
read(Dir) ->
    File = file(Dir),
    case file:consult(File) of
        {ok, [{?TAG, ?VERSION, #{vsn := V, from := F, deadline := D} = R}]}
          when is_binary(V), is_binary(F), is_integer(D) ->
            {ok, R};
        {error, enoent} -> none;
        Other ->
            ok = beamdeck_agent_file:set_aside(File, "fallback record", Other),
            none
    end.

%% @doc Write the record durably before returning.
-spec write(Dir, Record) -> ok | {error, binary()} when Dir :: string(), Record :: fallback().
write(Dir, Record) ->
    beamdeck_agent_file:write_term(file(Dir), "beamdeck agent: fallback timer of an install not yet permanent.",
                                   {?TAG, ?VERSION, Record}).

%% @doc Remove the record (absent is fine).
-spec delete(Dir) -> ok | {error, binary()} when Dir :: string().
delete(Dir) -> beamdeck_agent_file:delete(file(Dir)).

%% @doc What to do with a record, given the releases release_handler
%% reports now (beamdeck_agent_release:rel() maps) and the wall clock:
%% - the installed release is permanent: clear (made permanent);
%% - it is running (current, not permanent): roll back once the deadline
%%   has passed, else wait the time left;
%% - it is not running: clear. After a node restart release_handler boots
%%   the permanent release and reads the installed one as `unpacked': the
%%   node is already back where the fallback would take it.
-spec decide(Record, Rels, NowMs) -> decision()
    when Record :: fallback(), Rels :: [map()], NowMs :: integer().
decide(#{vsn := VsnB, deadline := Deadline}, Rels, Now) ->
    Vsn = binary_to_list(VsnB),
    Status = case [S || #{vsn := V, status := S} <- Rels, V =:= Vsn] of
                 [S | _] -> S;
                 [] -> absent
             end,
    case Status of
        permanent -> {clear, made_permanent};
        current when Now >= Deadline -> fire;
        current -> {wait, Deadline - Now};
        _ ->
            Permanent = beamdeck_agent_release:status_vsn(permanent, Rels),
            Running = case beamdeck_agent_release:status_vsn(current, Rels) of
                          undefined -> Permanent;
                          C -> C
                      end,
            {clear, {not_running, Status, Running, Permanent}}
    end.

%% @doc The record as wire JSON (install results, events).
-spec json(Record) -> map() when Record :: fallback().
json(R) ->
    maps:with([vsn, from, deadline, durationMs, commandId, armedAt, rollbackDigest, maxKills,
               acceptFindings], R).
