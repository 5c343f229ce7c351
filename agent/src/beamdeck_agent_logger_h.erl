%%% @doc Logger handler that turns supervisor, crash and (optionally)
%%% progress reports into beamdeck events (docs/protocol.md, `event`).
%%%
%%% `log/2` runs in the process that logs (often a supervisor of the host),
%%% so it does only bounded, non-blocking work: it reserves a slot with
%%% `beamdeck_agent_events:submit/2` (an atomics counter of in-flight
%%% events; over the limit the event is dropped and counted), builds a small
%%% map whose printed parts are capped, and sends it. Everything is caught:
%%% a handler that crashes would be removed by logger for good.
%%%
%%% Installed and removed by `beamdeck_agent_events`; the handler config
%%% holds the sink under `config => #{sink := Sink, progress := boolean()}`.
%%% It has no filters and accepts every domain, so SASL reports (domain
%%% `[otp, sasl]`) reach it even where Elixir's console backend hides them.
%%%
%%% Elixir's Logger 1.15+ translates OTP reports in a PRIMARY filter
%%% (`logger_translator'): every handler gets the report as text, and with
%%% `handle_sasl_reports: false' none at all. So the same capture also runs
%%% as a primary filter placed first (filter/2, `beamdeck_agent_events'
%%% keeps it first): it sees the report before any translation. Whichever
%%% of the two sees a report first submits it, the filter leaving the
%%% event's timestamp in the logging process's dictionary so that the
%%% handler, called next in the same process for the same event, does not
%%% submit it again.
%%% Progress reports are `info`: they also need a primary logger level of
%%% `info` or lower (Erlang's default primary level is `notice`).
%%%
%%% A crash report carries the crashed process's dictionary, its queued
%%% messages and the arguments of its frames: secrets, often. Unless
%%% `beamdeck_agent_detail:values_visible/0' (the `get_state' setting) says
%%% otherwise, it is sent as class, error tag, frames (module:function/arity)
%%% and the dictionary's keys only. Either way the event carries `frames'
%%% (`module:function/arity (file:line)', no arguments).
-module(beamdeck_agent_logger_h).

-export([adding_handler/1, changing_config/3, removing_handler/1, log/2, filter_config/1,
         handler_config/2, filter/2, filter_config/2]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([event/2]).
-endif.

%% Printed report cap and the caps of its parts (bytes).
-define(REPORT_CAP, 8192).
-define(REASON_CAP, 2048).
-define(MFARGS_CAP, 1024).

%% Process dictionary key: the `time' of the last report the filter took.
-define(TAKEN, '$beamdeck_agent_report_taken').

%%% LOGGER CALLBACKS %%%

%% @doc Logger callback: accept the handler only with a sink from
%% `beamdeck_agent_events`.
-spec adding_handler(Config) -> {ok, Config} | {error, term()}
    when Config :: logger:handler_config().
adding_handler(#{config := #{sink := _}} = Config) -> {ok, Config};
adding_handler(_Config) -> {error, no_sink}.

%% @doc Logger callback: the config as `logger:get_handler_config/1' shows
%% it, unchanged. Exported because logger calls it in a try without checking:
%% a handler without it costs an `undef' exception on every read, and the
%% events process reads this handler's config every tick.
-spec filter_config(Config) -> Config when Config :: logger:handler_config().
filter_config(Config) -> Config.

%% @doc Logger callback: keep the old sink when a new config comes without one
%% (someone updating levels or formatters for every handler).
-spec changing_config(SetOrUpdate, OldConfig, NewConfig) -> {ok, Config}
    when SetOrUpdate :: set | update, OldConfig :: logger:handler_config(),
         NewConfig :: logger:handler_config(), Config :: logger:handler_config().
changing_config(_SetOrUpdate, _Old, #{config := #{sink := _}} = New) -> {ok, New};
changing_config(_SetOrUpdate, #{config := OldSub}, New) -> {ok, New#{config => OldSub}};
changing_config(_SetOrUpdate, _Old, New) -> {ok, New}.

%% @doc Logger callback: nothing to clean up (the events process owns the sink).
-spec removing_handler(Config) -> ok when Config :: logger:handler_config().
removing_handler(_Config) -> ok.

%% @doc Logger callback, run in the logging process: pick the reports we
%% want, build a bounded event and hand it to the events process. Never raises.
-spec log(LogEvent, Config) -> ok
    when LogEvent :: logger:log_event(), Config :: logger:handler_config().
log(LogEvent, #{config := #{sink := Sink, progress := Progress}}) ->
    try
        case wanted(LogEvent, Progress) andalso not taken(LogEvent) of
            true -> _ = beamdeck_agent_events:submit(Sink, fun() -> event(LogEvent, ?REPORT_CAP) end), ok;
            false -> ok
        end
    catch _:_ ->
        beamdeck_agent_events:count_handler_error(Sink)
    end;
log(_LogEvent, _Config) ->
    ok.

%% @doc Primary logger filter (installed first by `beamdeck_agent_events'
%% with filter_config/2), run in the logging process: submit a wanted
%% report before other primary filters can rewrite or stop it. Always
%% `ignore': what the host logs is never changed. Never raises.
-spec filter(LogEvent, Config) -> ignore
    when LogEvent :: logger:log_event(), Config :: logger:filter_arg().
filter(LogEvent, #{sink := Sink, progress := Progress}) ->
    try
        case wanted(LogEvent, Progress) of
            true ->
                put(?TAKEN, event_time(LogEvent)),
                _ = beamdeck_agent_events:submit(Sink, fun() -> event(LogEvent, ?REPORT_CAP) end),
                ok;
            false -> ok
        end
    catch _:_ ->
        beamdeck_agent_events:count_handler_error(Sink)
    end,
    ignore;
filter(_LogEvent, _Config) ->
    ignore.

%% Whether filter/2 already submitted this event (same process, same time).
taken(LogEvent) ->
    case get(?TAKEN) of
        undefined -> false;
        T -> erase(?TAKEN), T =:= event_time(LogEvent)
    end.

event_time(#{meta := #{time := T}}) -> T;
event_time(_) -> none.

%%% API %%%

%% @doc The primary filter `beamdeck_agent_events' installs: filter/2 with
%% the same sink and progress setting as the handler.
-spec filter_config(Sink, Progress) -> logger:filter()
    when Sink :: beamdeck_agent_events:sink(), Progress :: boolean().
filter_config(Sink, Progress) ->
    {fun ?MODULE:filter/2, #{sink => Sink, progress => Progress}}.

%% @doc The handler config `beamdeck_agent_events` installs: no filters, level
%% `error` (supervisor and crash reports), `info` when progress reports are on.
-spec handler_config(Sink, Progress) -> logger:handler_config()
    when Sink :: beamdeck_agent_events:sink(), Progress :: boolean().
handler_config(Sink, Progress) ->
    #{level => case Progress of true -> info; false -> error end,
      filter_default => log,
      filters => [],
      config => #{sink => Sink, progress => Progress}}.

%% @doc A wanted log event as an event map (without `type`, `seq`, `bootId`,
%% which the events process adds); the printed report capped at `Cap` bytes.
-spec event(LogEvent, Cap) -> map()
    when LogEvent :: logger:log_event(), Cap :: pos_integer().
event(#{msg := {report, #{label := {supervisor, progress}, report := R}}} = LogEvent, Cap) ->
    maps:merge(
      (base(LogEvent, <<"progress_report">>, Cap))#{
          context => <<"progress">>,
          offender => offender(prop(started, R))},
      supervisor(prop(supervisor, R)));
event(#{msg := {report, #{label := {supervisor, Context}, report := R}}} = LogEvent, Cap) ->
    maps:merge(
      (base(LogEvent, <<"supervisor_report">>, Cap))#{
          context => beamdeck_agent_terms:id_text(prop(errorContext, R, Context)),
          reason => reason(prop(reason, R)),
          offender => offender(prop(offender, R))},
      supervisor(prop(supervisor, R)));
event(#{msg := {report, #{label := {proc_lib, crash}, report := R}}} = LogEvent, Cap) ->
    Info = case R of [I | _] when is_list(I) -> I; _ -> [] end,
    {Class, Reason, Stack} = case prop(error_info, Info) of
                                 {C, Rsn, Stk} -> {C, Rsn, Stk};
                                 _ -> {undefined, undefined, []}
                             end,
    Base = case beamdeck_agent_detail:values_visible() of
               true -> (base(LogEvent, <<"crash_report">>, Cap))#{reason => reason(Reason)};
               false -> (base_with_text(LogEvent, <<"crash_report">>, redacted_crash_text(Info, Class, Reason, Stack), Cap))#{
                            reason => reason_tag(Reason)}
           end,
    Base#{
        context => <<"crash">>,
        pid => beamdeck_agent_terms:maybe_pid(prop(pid, Info)),
        name => beamdeck_agent_terms:maybe_atom(prop(registered_name, Info)),
        initialCall => beamdeck_agent_terms:maybe_mfa(prop(initial_call, Info)),
        class => beamdeck_agent_terms:maybe_atom(Class),
        %% Code locations only (capability `crash_frames'): what the server
        %% still shows a viewer who may not see values.
        frames => [unicode:characters_to_binary(frame_text(F)) || F <- lists:sublist(safe_list(Stack), 20)]}.

%%% INTERNALS %%%

wanted(#{msg := {report, #{label := {supervisor, progress}}}}, Progress) -> Progress;
wanted(#{msg := {report, #{label := {supervisor, _}, report := R}}}, _) -> is_list(R);
wanted(#{msg := {report, #{label := {proc_lib, crash}, report := R}}}, _) -> is_list(R);
wanted(_, _) -> false.

%% Node time of the log event (logger's `time` is microseconds).
base(LogEvent, Kind, Cap) ->
    #{kind => Kind, at => at(LogEvent), report => report_text(LogEvent, Cap)}.

base_with_text(LogEvent, Kind, Text, Cap) ->
    #{kind => Kind, at => at(LogEvent), report => cap(Text, Cap)}.

at(#{meta := Meta}) ->
    case Meta of
        #{time := T} when is_integer(T) -> T div 1000;
        _ -> beamdeck_agent_terms:now_ms()
    end.

%% The crash report without values: what crashed, where, and which keys its
%% dictionary had.
redacted_crash_text(Info, Class, Reason, Stack) ->
    Dict = case prop(dictionary, Info) of D when is_list(D) -> D; _ -> [] end,
    {Keys, _} = beamdeck_agent_detail:dictionary(Dict, false),
    Text = io_lib:format(
             "crasher:~n  initial call: ~ts~n  pid: ~ts~n  registered_name: ~ts~n"
             "  error_info: ~ts: ~ts~n  stack: ~ts~n  message_queue_len: ~w~n"
             "  dictionary keys: ~ts~n  (values, messages and arguments hidden: get_state is off)~n",
             [or_dash(beamdeck_agent_terms:maybe_mfa(prop(initial_call, Info))),
              or_dash(beamdeck_agent_terms:maybe_pid(prop(pid, Info))),
              or_dash(beamdeck_agent_terms:maybe_atom(prop(registered_name, Info))),
              or_dash(beamdeck_agent_terms:maybe_atom(Class)),
              maps:get(text, reason_tag(Reason)),
              lists:join(", ", [frame_text(F) || F <- lists:sublist(safe_list(Stack), 20)]),
              prop(message_queue_len, Info, 0),
              lists:join(", ", [K || #{key := K} <- Keys])]),
    unicode:characters_to_binary(Text).

or_dash(null) -> <<"-">>;
or_dash(B) when is_binary(B) -> B.

safe_list(L) when is_list(L) -> L;
safe_list(_) -> [].

frame_text({M, F, ArgsOrArity, Loc}) when is_atom(M), is_atom(F) ->
    Arity = if is_list(ArgsOrArity) -> length(ArgsOrArity); is_integer(ArgsOrArity) -> ArgsOrArity; true -> 0 end,
    Where = case {proplists:get_value(file, safe_list(Loc)), proplists:get_value(line, safe_list(Loc))} of
                {File, Line} when is_list(File), is_integer(Line) -> io_lib:format(" (~ts:~w)", [File, Line]);
                _ -> ""
            end,
    io_lib:format("~ts:~ts/~w~ts", [beamdeck_agent_terms:atom(M), beamdeck_agent_terms:atom(F), Arity, Where]);
frame_text(_) ->
    "?".

%% An exit reason without its values: the atom, or the tag of a tagged tuple.
reason_tag(Reason) when is_atom(Reason) -> reason(Reason);
reason_tag(Reason) when is_tuple(Reason), tuple_size(Reason) > 0, is_atom(element(1, Reason)) ->
    #{text => <<"{", (beamdeck_agent_terms:atom(element(1, Reason)))/binary, ",...}">>, truncated => true};
reason_tag(_Reason) ->
    #{text => <<"(hidden: get_state is off)">>, truncated => true}.

%% The report as logger would print it (its own report_cb), capped. The
%% formatter's chars_limit bounds the work on huge reports; the byte cut
%% after it says whether anything was lost.
report_text(LogEvent, Cap) ->
    Text = try
               Chars = logger_formatter:format(LogEvent, #{template => [msg], single_line => false,
                                                           legacy_header => false,
                                                           chars_limit => 2 * Cap}),
               unicode:characters_to_binary(Chars)
           catch _:_ ->
               maps:get(text, beamdeck_agent_terms:printed(maps:get(msg, LogEvent), 2 * Cap))
           end,
    cap(Text, Cap).

cap(Text, Cap) when is_binary(Text), byte_size(Text) > Cap ->
    #{text => binary:copy(trim_utf8(binary:part(Text, 0, Cap))), truncated => true};
cap(Text, _Cap) when is_binary(Text) ->
    #{text => Text, truncated => false};
cap(_NotUtf8, _Cap) ->
    #{text => <<>>, truncated => true}.

trim_utf8(Bin) ->
    case unicode:characters_to_binary(Bin) of
        B when is_binary(B) -> B;
        {_, Good, _} -> Good
    end.

reason(Reason) ->
    Printed = beamdeck_agent_terms:printed(Reason, ?REASON_CAP),
    case is_atom(Reason) of
        true -> Printed#{atom => beamdeck_agent_terms:atom(Reason)};
        false -> Printed
    end.

%% `{local, Name}`, `{global, Name}`, `{via, Mod, Name}` or, for an unnamed
%% supervisor, `{Pid, Module}`.
supervisor({local, Name}) when is_atom(Name) -> #{supervisor => beamdeck_agent_terms:atom(Name)};
supervisor({global, Name}) -> #{supervisor => beamdeck_agent_terms:id_text(Name)};
supervisor({via, _Mod, Name}) -> #{supervisor => beamdeck_agent_terms:id_text(Name)};
supervisor({Pid, Mod}) when is_pid(Pid), is_atom(Mod) ->
    #{supervisor => beamdeck_agent_terms:pid(Pid), supervisorModule => beamdeck_agent_terms:atom(Mod)};
supervisor(Pid) when is_pid(Pid) -> #{supervisor => beamdeck_agent_terms:pid(Pid)};
supervisor(undefined) -> #{supervisor => null};
supervisor(Other) -> #{supervisor => beamdeck_agent_terms:id_text(Other)}.

%% OTP 25 gives the child as a proplist (`nb_children` instead of `pid` for
%% simple_one_for_one children at shutdown); a map is accepted as well.
offender(Child) when is_map(Child) -> offender(maps:to_list(Child));
offender(Child) when is_list(Child) ->
    MFArgs = prop(mfargs, Child, prop(mfa, Child)),
    Base = #{id => text_or_null(prop(id, Child)),
             pid => beamdeck_agent_terms:maybe_pid(prop(pid, Child)),
             mfargs => beamdeck_agent_terms:printed(MFArgs, ?MFARGS_CAP),
             mfa => beamdeck_agent_terms:maybe_mfa(MFArgs),
             restartType => text_or_null(prop(restart_type, Child)),
             shutdown => text_or_null(prop(shutdown, Child)),
             childType => text_or_null(prop(child_type, Child))},
    case prop(nb_children, Child) of
        N when is_integer(N) -> Base#{nbChildren => N};
        _ -> Base
    end;
offender(_) -> null.

text_or_null(undefined) -> null;
text_or_null(T) -> beamdeck_agent_terms:id_text(T).

prop(Key, List) -> prop(Key, List, undefined).

prop(Key, List, Default) when is_list(List) ->
    case lists:keyfind(Key, 1, List) of
        {Key, Value} -> Value;
        _ -> Default
    end;
prop(_Key, _NotList, Default) ->
    Default.
