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
%%% Progress reports are `info`: they also need a primary logger level of
%%% `info` or lower (Erlang's default primary level is `notice`).
-module(beamdeck_agent_logger_h).

-export([adding_handler/1, changing_config/3, removing_handler/1, log/2,
         handler_config/2, event/2]).

%% Printed report cap and the caps of its parts (bytes).
-define(REPORT_CAP, 8192).
-define(REASON_CAP, 2048).
-define(MFARGS_CAP, 1024).

%%% LOGGER CALLBACKS %%%

%% @doc Logger callback: accept the handler only with a sink from
%% `beamdeck_agent_events`.
-spec adding_handler(Config) -> {ok, Config} | {error, term()}
    when Config :: logger:handler_config().
adding_handler(#{config := #{sink := _}} = Config) -> {ok, Config};
adding_handler(_Config) -> {error, no_sink}.

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
        case wanted(LogEvent, Progress) of
            true -> _ = beamdeck_agent_events:submit(Sink, fun() -> event(LogEvent, ?REPORT_CAP) end), ok;
            false -> ok
        end
    catch _:_ ->
        beamdeck_agent_events:count_handler_error(Sink)
    end;
log(_LogEvent, _Config) ->
    ok.

%%% API %%%

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
    {Class, Reason} = case prop(error_info, Info) of
                          {C, Rsn, _Stack} -> {C, Rsn};
                          _ -> {undefined, undefined}
                      end,
    (base(LogEvent, <<"crash_report">>, Cap))#{
        context => <<"crash">>,
        pid => beamdeck_agent_terms:maybe_pid(prop(pid, Info)),
        name => beamdeck_agent_terms:maybe_atom(prop(registered_name, Info)),
        initialCall => beamdeck_agent_terms:maybe_mfa(prop(initial_call, Info)),
        class => beamdeck_agent_terms:maybe_atom(Class),
        reason => reason(Reason)}.

%%% INTERNALS %%%

wanted(#{msg := {report, #{label := {supervisor, progress}}}}, Progress) -> Progress;
wanted(#{msg := {report, #{label := {supervisor, _}, report := R}}}, _) -> is_list(R);
wanted(#{msg := {report, #{label := {proc_lib, crash}, report := R}}}, _) -> is_list(R);
wanted(_, _) -> false.

%% Node time of the log event (logger's `time` is microseconds).
base(#{meta := Meta} = LogEvent, Kind, Cap) ->
    At = case Meta of
             #{time := T} when is_integer(T) -> T div 1000;
             _ -> beamdeck_agent_terms:now_ms()
         end,
    #{kind => Kind, at => At, report => report_text(LogEvent, Cap)}.

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
