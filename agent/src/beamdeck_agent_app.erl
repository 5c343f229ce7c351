%%% @doc The beamdeck agent application.
%%%
%%% Each start checks the config (an invalid value is logged and replaced by
%%% its default), makes a new boot id (docs/protocol.md: events are
%%% deduplicated on node, boot id and seq), then starts the top supervisor.
-module(beamdeck_agent_app).

-behaviour(application).

-export([start/2, stop/1]).

%% @doc Check the config, make this boot's id and start the top supervisor.
-spec start(StartType, StartArgs) -> {ok, pid()} | {error, term()}
    when StartType :: application:start_type(), StartArgs :: term().
start(_StartType, _StartArgs) ->
    _ = beamdeck_agent_config:check(),
    _ = beamdeck_agent_config:new_boot_id(),
    beamdeck_agent_sup:start_link().

%% @doc Nothing to clean up: the supervisor stops the children.
-spec stop(State) -> ok when State :: term().
stop(_State) ->
    ok.
