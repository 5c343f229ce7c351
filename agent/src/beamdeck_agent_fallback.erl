%%% @doc The fallback timer: an install run with a fallback (`fallbackMs'
%%% on the install command, capability `fallback') that is not made
%%% permanent before its deadline is rolled back by the agent itself, with
%%% or without a server connected.
%%%
%%% The install step journals the record (beamdeck_agent_fallback_record)
%%% before install_release (prepare/1) and adds the rollback plan's digest
%%% after it (armed/2). At the deadline this server asks the command server
%%% for a `rollback' to the `from' release (the same runner and steps as an
%%% operator's rollback, gated by the armed plan: no more kills than it
%%% predicted, no other error finding). The outcome goes out as a
%%% `fallback' event, journaled (beamdeck_agent_fallback_outcome) before the
%%% record is deleted and kept there until the server acks it: a node
%%% restart before the server is back sends it again at agent start.
%%%
%%% A make_permanent or a manual rollback clears the record (command_done/3).
%%% At agent start the record is honoured by beamdeck_agent_fallback_record:
%%% decide/3: still running the installed release → roll back now if the
%%% deadline passed, else re-arm; the node restarted (release_handler boots
%%% the permanent release; the installed one reads `unpacked') → clear, with
%%% the event "node restarted into permanent release"; made permanent → clear.
-module(beamdeck_agent_fallback).

-behaviour(gen_server).

-export([start_link/0, start_link/1, prepare/1, armed/2, command_done/3, status/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, handle_continue/2]).

-define(SERVER, ?MODULE).
-define(CALL_TIMEOUT, 5000).
%% The wall clock is read again at least this often while waiting, so a
%% clock step moves the deadline too.
-define(MAX_WAIT_MS, 60000).
-define(RETRY_MS, 1000).
%% release_handler may start after the agent: how long to wait for it.
-define(MAX_TRIES, 120).
%% How often a journaled outcome's delivery is asked about.
-define(ACK_CHECK_MS, 1000).

-type fallback() :: beamdeck_agent_fallback_record:fallback().
-type opts() :: #{state_dir => string(), releases => fun(() -> {ok, [map()]} | stale),
                  submit => fun((map()) -> {ok, map()} | {error, atom(), binary()}),
                  notify => fun((map()) -> {ok, pos_integer()} | {error, term()}),
                  delivery => fun((pos_integer()) -> acked | pending | lost)}.

-record(st, {dir :: string(),
             record = none :: fallback() | none,
             timer :: reference() | undefined,
             firing = none :: binary() | none,
             tries = 0 :: non_neg_integer(),
             releases :: fun(() -> {ok, [map()]} | stale),
             submit :: fun((map()) -> {ok, map()} | {error, atom(), binary()}),
             notify :: fun((map()) -> {ok, pos_integer()} | {error, term()}),
             delivery :: fun((pos_integer()) -> acked | pending | lost),
             %% Journaled outcomes not yet acked: install id, event, its seq
             %% (none: the events process did not take it; sent again).
             outbox = [] :: [{binary(), map(), pos_integer() | none}],
             ack_timer :: reference() | undefined}).

%%% API %%%

%% @doc Start the server, registered as `beamdeck_agent_fallback'.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> start_link(#{}).

%% @doc Start with options (tests): `state_dir', `releases' (the release
%% statuses), `submit' (starts the rollback command), `notify' (events:
%% returns the seq) and `delivery' (whether the server acked that seq).
-spec start_link(Opts) -> {ok, pid()} | {error, term()} when Opts :: opts().
start_link(Opts) ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, Opts, []).

%% @doc In the install runner, before install_release: journal the record
%% and start its timer. An error means the fallback is not durable: the
%% install must not run.
-spec prepare(Record) -> ok | {error, binary()} when Record :: fallback().
prepare(Record) ->
    try gen_server:call(?SERVER, {prepare, Record}, ?CALL_TIMEOUT)
    catch exit:_ -> {error, <<"the agent's fallback service is not running">>}
    end.

%% @doc In the install runner, after install_release: the rollback plan
%% computed now (its digest and the gate the fallback rolls back under).
%% Returns the record as JSON for the install result (null without one).
-spec armed(CommandId, Plan) -> map() | null
    when CommandId :: binary(),
         Plan :: #{rollbackDigest := binary() | null, maxKills := non_neg_integer() | null,
                   acceptFindings := [binary()]}.
armed(CommandId, Plan) ->
    try gen_server:call(?SERVER, {armed, CommandId, Plan}, ?CALL_TIMEOUT)
    catch exit:_ -> null
    end.

%% @doc The command server finished command `Id' (`Action', ok or not).
-spec command_done(Id, Action, Ok) -> ok when Id :: binary(), Action :: atom(), Ok :: boolean().
command_done(Id, Action, Ok) ->
    gen_server:cast(?SERVER, {command_done, Id, Action, Ok}).

%% @doc The pending fallback as JSON, or null.
-spec status() -> map() | null.
status() ->
    try gen_server:call(?SERVER, status, ?CALL_TIMEOUT)
    catch exit:_ -> null
    end.

%%% SERVER %%%

%% @private
-spec init(Opts) -> {ok, #st{}, {continue, recover}} when Opts :: opts().
init(Opts) ->
    Dir = maps:get(state_dir, Opts, beamdeck_agent_journal:default_dir()),
    St = #st{dir = Dir,
             releases = maps:get(releases, Opts, fun releases/0),
             submit = maps:get(submit, Opts, fun beamdeck_agent_upgrade:internal_command/1),
             notify = maps:get(notify, Opts, fun beamdeck_agent_events:notify_watched/1),
             delivery = maps:get(delivery, Opts, fun beamdeck_agent_events:delivery/1)},
    {ok, St, {continue, recover}}.

%% @private
-spec handle_continue(recover, #st{}) -> {noreply, #st{}}.
handle_continue(recover, #st{dir = Dir} = St0) ->
    %% Outcomes the server never acked (the node restarted meanwhile) go out again.
    Outcomes = beamdeck_agent_fallback_outcome:read(Dir),
    St = lists:foldl(fun({Key, Event}, S) -> deliver(Key, Event, S) end, St0, Outcomes),
    case beamdeck_agent_fallback_record:read(Dir) of
        {ok, #{commandId := Id} = R} ->
            case lists:keymember(Id, 1, Outcomes) of
                %% Decided before the restart, the record not yet deleted.
                true -> delete_record(Dir), {noreply, St};
                false -> {noreply, check(St#st{record = R})}
            end;
        none -> {noreply, St}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call({prepare, R}, _From, #st{dir = Dir} = St) ->
    case beamdeck_agent_fallback_record:write(Dir, R) of
        ok -> {reply, ok, schedule(R, St#st{record = R, firing = none})};
        {error, _} = E -> {reply, E, St}
    end;
handle_call({armed, Id, Plan}, _From, #st{record = #{commandId := Id} = R, dir = Dir} = St) ->
    R1 = maps:merge(R, maps:with([rollbackDigest, maxKills, acceptFindings], Plan)),
    case beamdeck_agent_fallback_record:write(Dir, R1) of
        ok -> ok;
        {error, Why} -> logger:warning("beamdeck agent: fallback record not updated: ~ts", [Why])
    end,
    {reply, beamdeck_agent_fallback_record:json(R1), St#st{record = R1}};
handle_call({armed, _, _}, _From, St) ->
    {reply, null, St};
handle_call(status, _From, #st{record = R} = St) ->
    {reply, case R of none -> null; _ -> beamdeck_agent_fallback_record:json(R) end, St};
handle_call(_Other, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast({command_done, Id, _Action, Ok}, #st{firing = Id} = St) ->
    Outcome = case Ok of true -> <<"rolled_back">>; false -> <<"failed">> end,
    Msg = case Ok of
              true -> beamdeck_agent_terms:fmt("fallback: ~ts was not made permanent in time; rolled back to ~ts",
                          [vsn(St, vsn), vsn(St, from)]);
              false -> beamdeck_agent_terms:fmt("fallback: the rollback of ~ts to ~ts failed (command ~ts): the node "
                           "stays on ~ts", [vsn(St, vsn), vsn(St, from), Id, vsn(St, vsn)])
          end,
    {noreply, clear(Outcome, Msg, St)};
handle_cast({command_done, _Id, make_permanent, true}, #st{record = #{vsn := V}} = St) ->
    {noreply, clear(<<"cleared">>, beamdeck_agent_terms:fmt("fallback: ~ts was made permanent; the fallback is cleared", [V]), St)};
handle_cast({command_done, _Id, rollback, true}, #st{record = #{vsn := V}} = St) ->
    {noreply, clear(<<"cleared">>, beamdeck_agent_terms:fmt("fallback: ~ts was rolled back by an operator; the fallback is "
                                       "cleared", [V]), St)};
handle_cast({command_done, Id, install, false}, #st{record = #{commandId := Id}} = St) ->
    %% The install the record was prepared for did not install: nothing to undo.
    {noreply, clear(none, <<>>, St)};
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({check, Ref}, #st{timer = Ref} = St) ->
    {noreply, check(St#st{timer = undefined})};
handle_info({ack_check, Ref}, #st{ack_timer = Ref} = St) ->
    {noreply, check_acks(St#st{ack_timer = undefined})};
handle_info(_Msg, St) ->
    {noreply, St}.

%%% DECISIONS %%%

check(#st{record = none} = St) -> St;
check(#st{firing = Id} = St) when is_binary(Id) -> St;
check(#st{record = R} = St) ->
    Releases = St#st.releases,
    case Releases() of
        stale when St#st.tries < ?MAX_TRIES ->
            retry(St#st{tries = St#st.tries + 1});
        stale ->
            logger:warning("beamdeck agent: release_handler never answered; the fallback of ~ts "
                           "is kept for the next start", [maps:get(vsn, R)]),
            St;
        {ok, Rels} ->
            case beamdeck_agent_fallback_record:decide(R, Rels, beamdeck_agent_terms:now_ms()) of
                {wait, Ms} -> schedule_in(Ms, St#st{tries = 0});
                fire -> fire(St#st{tries = 0});
                {clear, made_permanent} ->
                    clear(<<"cleared">>, beamdeck_agent_terms:fmt("fallback: ~ts is permanent; the fallback is cleared",
                                             [maps:get(vsn, R)]), St);
                {clear, {not_running, unpacked, Running, Running}} ->
                    clear(<<"node_restarted">>,
                          beamdeck_agent_terms:fmt("fallback: node restarted into permanent release ~ts; ~ts is not running "
                              "(unpacked), nothing to roll back", [Running, maps:get(vsn, R)]), St);
                {clear, {not_running, Status, Running, _}} ->
                    clear(<<"cleared">>,
                          beamdeck_agent_terms:fmt("fallback: ~ts is no longer running (~ts; running: ~ts); the fallback is "
                              "cleared", [maps:get(vsn, R), Status, text(Running)]), St)
            end
    end.

%% The rollback, through the command server (one command at a time: while
%% another runs, try again shortly).
fire(#st{record = #{from := From, commandId := InstallId} = R} = St) ->
    Id = command_id(InstallId),
    Gate = #{plan => null, max_kills => case maps:get(maxKills, R, null) of null -> 0; N -> N end,
             findings => maps:get(acceptFindings, R, [])},
    Cmd = #{id => Id, action => rollback, vsn => From, params => #{}, gate => Gate},
    Submit = St#st.submit,
    case Submit(Cmd) of
        {ok, #{duplicate := true, status := done, ok := Ok}} ->
            handle_done(Id, Ok =:= true, St#st{firing = Id});
        {ok, _} ->
            St#st{firing = Id};
        {error, Code, _} when Code =:= busy; Code =:= unavailable; Code =:= timeout ->
            retry(St);
        {error, Code, Msg} ->
            clear(<<"failed">>, beamdeck_agent_terms:fmt("fallback: the rollback of ~ts to ~ts could not start (~ts: ~ts)",
                                    [maps:get(vsn, R), From, Code, Msg]), St)
    end.

handle_done(Id, Ok, St) ->
    {noreply, St1} = handle_cast({command_done, Id, rollback, Ok}, St),
    St1.

command_id(InstallId) ->
    binary:part(<<"fallback-", InstallId/binary>>, 0, min(128, 9 + byte_size(InstallId))).

%% Delete the record and say why (Outcome none: silently). The event is
%% journaled first, so no restart can lose both; the record is gone before
%% the event leaves, so whoever sees the event sees the record gone.
clear(Outcome, Msg, #st{dir = Dir, record = R} = St0) ->
    St = case {Outcome, R} of
             {none, _} -> delete_record(Dir), St0;
             {_, none} -> delete_record(Dir), St0;
             {_, #{commandId := Key}} ->
                 Event = #{kind => <<"fallback">>, context => Outcome, at => beamdeck_agent_terms:now_ms(),
                           reason => #{text => Msg, truncated => false},
                           fallback => beamdeck_agent_fallback_record:json(R),
                           rollbackCommandId => case St0#st.firing of none -> null; F -> F end},
                 case beamdeck_agent_fallback_outcome:add(Dir, Key, Event) of
                     ok -> ok;
                     {error, Why} -> logger:warning("beamdeck agent: fallback event not journaled: ~ts", [Why])
                 end,
                 logger:notice("beamdeck agent: ~ts", [Msg]),
                 delete_record(Dir),
                 deliver(Key, Event, St0)
         end,
    cancel(St#st{record = none, firing = none}).

delete_record(Dir) ->
    case beamdeck_agent_fallback_record:delete(Dir) of
        ok -> ok;
        {error, Why} -> logger:warning("beamdeck agent: fallback record not removed: ~ts", [Why])
    end.

%%% OUTCOME DELIVERY %%%

%% Hand the event to the events process and watch its seq until acked.
deliver(Key, Event, St) ->
    Notify = St#st.notify,
    Seq = try Notify(Event) of
              {ok, S} when is_integer(S), S > 0 -> S;
              _ -> none
          catch _:_ -> none
          end,
    schedule_ack(St#st{outbox = lists:keystore(Key, 1, St#st.outbox, {Key, Event, Seq})}).

%% Acked: out of the journal. Lost (dropped by the buffer, or the events
%% process restarted) or never taken: sent again.
check_acks(#st{outbox = Out, dir = Dir, delivery = Delivery} = St0) ->
    Check = fun({Key, Event, none}, S) -> deliver(Key, Event, S);
               ({Key, Event, Seq} = Entry, S) ->
                    case Delivery(Seq) of
                        acked ->
                            case beamdeck_agent_fallback_outcome:remove(Dir, Key) of
                                ok -> ok;
                                {error, Why} -> logger:warning("beamdeck agent: fallback outcome not removed: ~ts", [Why])
                            end,
                            S;
                        pending -> S#st{outbox = S#st.outbox ++ [Entry]};
                        lost -> deliver(Key, Event, S)
                    end
            end,
    schedule_ack(lists:foldl(Check, St0#st{outbox = []}, Out)).

schedule_ack(#st{outbox = [_ | _], ack_timer = undefined} = St) ->
    Ref = make_ref(),
    _ = erlang:send_after(?ACK_CHECK_MS, self(), {ack_check, Ref}),
    St#st{ack_timer = Ref};
schedule_ack(St) ->
    St.

%%% TIMER %%%

schedule(#{deadline := D}, St) ->
    schedule_in(max(0, D - beamdeck_agent_terms:now_ms()), St).

schedule_in(Ms, St) ->
    St1 = cancel(St),
    Ref = make_ref(),
    _ = erlang:send_after(min(Ms, ?MAX_WAIT_MS), self(), {check, Ref}),
    St1#st{timer = Ref}.

retry(St) -> schedule_in(?RETRY_MS, St).

%% A stale timer message is ignored: its ref no longer matches.
cancel(St) -> St#st{timer = undefined}.

%%% HELPERS %%%

releases() ->
    case beamdeck_agent_release:releases_info() of
        #{handler := true, stale := false, rels := Rels} -> {ok, Rels};
        _ -> stale
    end.

vsn(#st{record = none}, _) -> <<"?">>;
vsn(#st{record = R}, Key) -> maps:get(Key, R).

text(undefined) -> "none";
text(S) -> S.

