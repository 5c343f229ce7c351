defmodule BdMix.MixProject do
  use Mix.Project

  # A mix release with the beamdeck agent as a path dependency (a rebar3
  # project: MIX_REBAR3 points mix at the system's rebar3, no hex).
  # mix release's defaults are kept, strip_beams included.
  def project do
    [app: :bd_mix, version: "1.1.0", elixir: "~> 1.14", start_permanent: true, deps: deps()]
  end

  def application do
    [mod: {BdMix.Application, []}, extra_applications: [:logger, :sasl]]
  end

  defp deps do
    [{:beamdeck_agent, path: System.fetch_env!("BEAMDECK_AGENT_DIR"), manager: :rebar3}]
  end
end
