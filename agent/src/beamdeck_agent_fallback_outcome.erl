%%% @doc The fallback outcome journal: `fallback' events the agent made
%%% (rolled back, failed, cleared, node restarted) and the server has not yet
%%% stored. The rollback itself changes the node for good, so its event must
%%% survive a node restart that comes before the server does: it is written
%%% here before the fallback record is deleted, and removed only once the
%%% events process reports the server's ack (beamdeck_agent_events:delivery/1).
%%% At agent start the entries are sent again (beamdeck_agent_fallback).
%%%
%%% One entry per install (key: the install's command id), at most
%%% `?MAX_ENTRIES' (the oldest go first, logged). The file
%%% (`beamdeck_agent_fallback_outcomes.term') sits beside the fallback record
%%% and is replaced by write-then-rename with the data synced first.
-module(beamdeck_agent_fallback_outcome).

-export([read/1, add/3, remove/2, file/1]).

-define(JOURNAL_FILE, "beamdeck_agent_fallback_outcomes.term").
-define(TAG, beamdeck_agent_fallback_outcomes).
-define(VERSION, 1).
-define(MAX_ENTRIES, 16).

-type entry() :: {Key :: binary(), Event :: map()}.
-export_type([entry/0]).

%% @doc The journal's path in `Dir'.
-spec file(Dir) -> string() when Dir :: string().
file(Dir) -> filename:join(Dir, ?JOURNAL_FILE).

%% @doc The entries in `Dir', oldest first; an unreadable file is kept
%% aside as `….bad' (logged) and reads as empty.
-spec read(Dir) -> [entry()] when Dir :: string().
read(Dir) ->
    File = file(Dir),
    case file:consult(File) of
        {ok, [{?TAG, ?VERSION, Entries}]} when is_list(Entries) ->
            [{K, E} || {K, E} <- Entries, is_binary(K), is_map(E)];
        {error, enoent} -> [];
        Other ->
            ok = beamdeck_agent_file:set_aside(File, "fallback outcome journal", Other),
            []
    end.

%% @doc Journal the event `Event' of install `Key' (replacing an earlier one
%% of the same install), durably before returning.
-spec add(Dir, Key, Event) -> ok | {error, binary()} when Dir :: string(), Key :: binary(), Event :: map().
add(Dir, Key, Event) ->
    Entries = lists:keydelete(Key, 1, read(Dir)) ++ [{Key, Event}],
    Dropped = max(0, length(Entries) - ?MAX_ENTRIES),
    [logger:warning("beamdeck agent: fallback outcome journal full; the event of ~ts is dropped", [K])
     || {K, _} <- lists:sublist(Entries, Dropped)],
    write(Dir, lists:nthtail(Dropped, Entries)).

%% @doc Forget the entry of install `Key' (the server stored its event).
-spec remove(Dir, Key) -> ok | {error, binary()} when Dir :: string(), Key :: binary().
remove(Dir, Key) ->
    Entries = read(Dir),
    case lists:keymember(Key, 1, Entries) of
        true -> write(Dir, lists:keydelete(Key, 1, Entries));
        false -> ok
    end.

write(Dir, []) -> beamdeck_agent_file:delete(file(Dir));
write(Dir, Entries) ->
    beamdeck_agent_file:write_term(file(Dir), "beamdeck agent: fallback events not yet stored by the server.",
                                   {?TAG, ?VERSION, Entries}).
