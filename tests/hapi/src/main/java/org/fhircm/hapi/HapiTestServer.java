package org.fhircm.hapi;

import ca.uhn.fhir.batch2.api.IJobMaintenanceService;
import ca.uhn.fhir.batch2.jobs.export.BulkDataExportProvider;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.match.config.SubscriptionProcessorConfig;
import ca.uhn.fhir.rest.server.ETagSupportEnum;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import java.net.InetSocketAddress;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;

/**
 * Starts a HAPI FHIR JPA server on 127.0.0.1 for fhir-cm's tests.
 *
 * <p>Usage: {@code HapiTestServer R4|R5 [port]} (port 0, the default, picks a free one). When the
 * server answers, one line {@code READY http://127.0.0.1:<port>/fhir} is printed on standard output;
 * the test fixture waits for it and then for {@code /metadata}. The server stops when standard input
 * closes, so a test run that dies never leaves it behind.
 */
public final class HapiTestServer {

	private HapiTestServer() {}

	public static void main(String[] args) throws Exception {
		String release = args.length > 0 ? args[0].toUpperCase() : "R4";
		int port = args.length > 1 ? Integer.parseInt(args[1]) : 0;
		Class<?> config =
				switch (release) {
					case "R4" -> R4Config.class;
					case "R5" -> R5Config.class;
					default -> throw new IllegalArgumentException("FHIR release must be R4 or R5, not " + release);
				};

		AnnotationConfigApplicationContext context = new AnnotationConfigApplicationContext(config);
		RestfulServer restful = restfulServer(context);

		Server jetty = new Server(new InetSocketAddress("127.0.0.1", port));
		ServletContextHandler handler = new ServletContextHandler();
		handler.setContextPath("/");
		ServletHolder holder = new ServletHolder(restful);
		holder.setInitOrder(1);
		handler.addServlet(holder, "/fhir/*");
		jetty.setHandler(handler);
		jetty.start();

		// HAPI moves a batch job (a Bulk $export) from step to step in a maintenance pass it schedules
		// once a minute; a test server runs the pass five times a second, so an export takes about a
		// second (a pass with no job to move is one query of an empty table).
		IJobMaintenanceService maintenance = context.getBean(IJobMaintenanceService.class);
		ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(runnable -> {
			Thread thread = new Thread(runnable, "batch2-maintenance-ticker");
			thread.setDaemon(true);
			return thread;
		});
		ticker.scheduleWithFixedDelay(() -> {
			try {
				maintenance.runMaintenancePass();
			} catch (RuntimeException e) {
				// the next pass tries again
			}
		}, 200, 200, TimeUnit.MILLISECONDS);

		int actual = ((ServerConnector) jetty.getConnectors()[0]).getLocalPort();
		System.out.println("READY http://127.0.0.1:" + actual + "/fhir");
		System.out.flush();

		// Runs until the parent closes our standard input (or the process is killed).
		while (System.in.read() != -1) {
			// discard
		}
		jetty.stop();
		context.close();
		System.exit(0);
	}

	private static RestfulServer restfulServer(AnnotationConfigApplicationContext context) {
		IFhirSystemDao<?, ?> systemDao = context.getBean(IFhirSystemDao.class);
		RestfulServer server = new RestfulServer(systemDao.getContext());
		server.registerProviders(context.getBean(ResourceProviderFactory.class).createProviders());
		server.registerProvider(context.getBean(JpaSystemProvider.class));
		server.registerProvider(context.getBean(BulkDataExportProvider.class));
		server.setServerConformanceProvider(new JpaCapabilityStatementProvider(
				server,
				systemDao,
				context.getBean(JpaStorageSettings.class),
				context.getBean(ISearchParamRegistry.class),
				context.getBean(IValidationSupport.class)));
		server.setPagingProvider(context.getBean(DatabaseBackedPagingProvider.class));
		server.setETagSupport(ETagSupportEnum.ENABLED);
		server.setDefaultPrettyPrint(false);
		return server;
	}
}
