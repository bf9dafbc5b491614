package pybeat.nodelauncher.os3;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.settings.Settings;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.Version;
import org.opensearch.node.Node;
import org.opensearch.plugins.PluginInfo;
import org.opensearch.transport.Netty4ModulePlugin;

import pybeat.nodelauncher.Launcher;

/** An embedded OpenSearch 3.x (Java 21+) node: the server jar plus netty4 for HTTP and transport. */
public final class Main {

    static final class PluginNode extends Node {
        PluginNode(Settings settings) {
            super(
                InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), null, () -> settings.get("node.name")),
                // OpenSearch 3 takes plugin descriptors (as its MockNode builds them), not classes.
                List.of(new PluginInfo(Netty4ModulePlugin.class.getName(), "classpath plugin", "NA", Version.CURRENT,
                    "21", Netty4ModulePlugin.class.getName(), null, Collections.emptyList(), false)),
                true
            );
        }
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("opensearch.set.netty.runtime.available.processors", "false");
        Launcher.main(Main::start, args);
    }

    static AutoCloseable start(Map<String, String> flat) throws Exception {
        Settings.Builder b = Settings.builder();
        flat.forEach(b::put);
        Node node = new PluginNode(b.build());
        node.start();
        return () -> {
            node.close();
            node.awaitClose(30, TimeUnit.SECONDS);
        };
    }
}
