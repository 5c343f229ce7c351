%%% @doc SASL alarms (`alarm_handler:set_alarm/1`, `clear_alarm/1`, e.g.
%%% os_mon's `system_memory_high_watermark`) as `alarm_set` / `alarm_clear`
%%% events.
%%%
%%% Two roles in one module: a gen_event handler added to `alarm_handler`,
%%% and the small watcher process that adds it. The watcher (linked to
%%% `beamdeck_agent_events`) adds the handler with `add_sup_handler`, so the
%%% handler goes away with the watcher, and the watcher exits when the
%%% handler is removed (alarm_handler restarted, handler crashed): the events
%%% process sees the exit and tries again later. The events process itself
%%% never waits on `alarm_handler` (gen_event calls have no timeout).
-module(beamdeck_agent_alarm_h).
-behaviour(gen_event).

-export([start_link/1, init/1, handle_event/2, handle_call/2, handle_info/2, terminate/2,
         code_change/3]).

-define(DESC_CAP, 2048).
%% How long the watcher waits for alarm_handler's current alarms.
-define(GET_ALARMS_TIMEOUT, 2000).

%%% WATCHER %%%

%% @doc Start the linked watcher; `ignore` when `alarm_handler` (SASL) is not
%% running. Current alarms are reported once, as `alarm_set` events with
%% `"active": true`.
-spec start_link(Sink) -> {ok, pid()} | ignore when Sink :: beamdeck_agent_events:sink().
start_link(Sink) ->
    case whereis(alarm_handler) of
        undefined -> ignore;
        _ -> {ok, proc_lib:spawn_link(fun() -> watch(Sink) end)}
    end.

watch(Sink) ->
    try gen_event:add_sup_handler(alarm_handler, ?MODULE, Sink) of
        ok ->
            report_active(Sink),
            %% Return (exit `normal`): the events process traps exits and
            %% sees it anyway, and a crash report here would itself be an event.
            receive
                {gen_event_EXIT, ?MODULE, _Reason} -> ok
            end;
        _Error ->
            ok
    catch
        _:_ -> ok
    end.

%% Alarms set before we were added (only the default alarm_handler module
%% keeps them; a replaced handler module answers nothing useful).
report_active(Sink) ->
    try gen_event:call(alarm_handler, alarm_handler, get_alarms, ?GET_ALARMS_TIMEOUT) of
        Alarms when is_list(Alarms) ->
            lists:foreach(fun(A) ->
                              beamdeck_agent_events:submit(Sink, fun() -> (event({set_alarm, A}))#{active => true} end)
                          end, lists:sublist(Alarms, 100));
        _ ->
            ok
    catch
        _:_ -> ok
    end.

%%% GEN_EVENT CALLBACKS %%%

%% @doc gen_event callback: the state is the events sink.
-spec init(Sink) -> {ok, Sink} when Sink :: beamdeck_agent_events:sink().
init(Sink) -> {ok, Sink}.

%% @doc gen_event callback, run in `alarm_handler`: forward set/clear, never raise.
-spec handle_event(Event, Sink) -> {ok, Sink}
    when Event :: term(), Sink :: beamdeck_agent_events:sink().
handle_event({Tag, _} = Event, Sink) when Tag =:= set_alarm; Tag =:= clear_alarm ->
    try beamdeck_agent_events:submit(Sink, fun() -> event(Event) end)
    catch _:_ -> ok
    end,
    {ok, Sink};
handle_event(_Event, Sink) ->
    {ok, Sink}.

%% @doc gen_event callback: no calls.
-spec handle_call(Request, Sink) -> {ok, {error, unknown_call}, Sink}
    when Request :: term(), Sink :: beamdeck_agent_events:sink().
handle_call(_Request, Sink) -> {ok, {error, unknown_call}, Sink}.

%% @doc gen_event callback: ignore stray messages.
-spec handle_info(Info, Sink) -> {ok, Sink} when Info :: term(), Sink :: beamdeck_agent_events:sink().
handle_info(_Info, Sink) -> {ok, Sink}.

%% @doc gen_event callback.
-spec terminate(Reason, Sink) -> ok when Reason :: term(), Sink :: beamdeck_agent_events:sink().
terminate(_Reason, _Sink) -> ok.

%% @doc gen_event callback.
-spec code_change(OldVsn, Sink, Extra) -> {ok, Sink}
    when OldVsn :: term(), Sink :: beamdeck_agent_events:sink(), Extra :: term().
code_change(_OldVsn, Sink, _Extra) -> {ok, Sink}.

%% @doc An alarm notification as an event map: `alarm` is the alarm id as
%% text (`"system_memory_high_watermark"`, `"{disk_almost_full,\"/\"}"`),
%% `description` its printed description (set only).
-spec event(Notification) -> map()
    when Notification :: {set_alarm, term()} | {clear_alarm, term()}.
event({set_alarm, {Id, Desc}}) ->
    #{kind => <<"alarm_set">>, at => beamdeck_agent_terms:now_ms(),
      alarm => beamdeck_agent_terms:id_text(Id),
      description => beamdeck_agent_terms:printed(Desc, ?DESC_CAP)};
event({set_alarm, Id}) ->
    #{kind => <<"alarm_set">>, at => beamdeck_agent_terms:now_ms(),
      alarm => beamdeck_agent_terms:id_text(Id), description => null};
event({clear_alarm, Id}) ->
    #{kind => <<"alarm_clear">>, at => beamdeck_agent_terms:now_ms(),
      alarm => beamdeck_agent_terms:id_text(Id)}.
