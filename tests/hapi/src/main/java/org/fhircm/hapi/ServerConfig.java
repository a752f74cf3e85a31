package org.fhircm.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.api.dao.DaoRegistry;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.util.ResourceCountCache;
import ca.uhn.fhir.jpa.dao.FulltextSearchSvcImpl;
import ca.uhn.fhir.jpa.provider.DaoRegistryResourceSupportedSvc;
import ca.uhn.fhir.rest.api.IResourceSupportedSvc;
import ca.uhn.fhir.jpa.dao.IFulltextSearchSvc;
import ca.uhn.fhir.jpa.dao.search.HSearchSortHelperImpl;
import ca.uhn.fhir.jpa.dao.search.IHSearchSortHelper;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirPostgresDialect;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.search.IStaleSearchDeletingSvc;
import ca.uhn.fhir.jpa.search.StaleSearchDeletingSvcImpl;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.subscription.match.config.SubscriptionProcessorConfig;
import ca.uhn.fhir.jpa.subscription.match.deliver.email.IEmailSender;
import ca.uhn.fhir.jpa.subscription.submit.config.SubscriptionSubmitterConfig;
import jakarta.persistence.EntityManagerFactory;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.apache.commons.dbcp2.BasicDataSource;
import org.hl7.fhir.dstu2.model.Subscription.SubscriptionChannelType;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

/**
 * The beans every HAPI JPA server needs whatever its FHIR release: storage on an in-memory H2
 * database (or on PostgreSQL, as HAPI runs in production, when the system property
 * {@code fhircm.hapi.jdbc.url} names a {@code jdbc:postgresql:} database), rest-hook subscription matching and delivery, and the batch jobs behind Bulk $export.
 * The release-specific DAOs and providers come from HAPI's own {@code JpaR4Config}/{@code JpaR5Config}
 * (see {@link R4Config} and {@link R5Config}).
 */
@Configuration
@EnableTransactionManagement
@Import({
	ThreadPoolFactoryConfig.class,
	SubscriptionSubmitterConfig.class,
	SubscriptionProcessorConfig.class,
	SubscriptionChannelConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class
})
public class ServerConfig {

	@Bean
	public JpaStorageSettings storageSettings() {
		JpaStorageSettings settings = new JpaStorageSettings();
		// As on the public HAPI test servers: deletes and expunge allowed, external references kept.
		settings.setAllowMultipleDelete(true);
		settings.setAllowExternalReferences(true);
		settings.setExpungeEnabled(true);
		settings.setDeleteExpungeEnabled(true);
		settings.setEnableTaskBulkExportJobExecution(true);
		// Searches are computed afresh: tests read their own writes at once.
		settings.setReuseCachedSearchResultsForMillis(null);
		return settings;
	}

	@Bean
	public SubscriptionSettings subscriptionSettings() {
		SubscriptionSettings settings = new SubscriptionSettings();
		settings.addSupportedSubscriptionType(SubscriptionChannelType.RESTHOOK);
		// Deliver within a second of the write rather than at the next scheduled pass.
		settings.setSubscriptionChangeQueuedImmediately(true);
		return settings;
	}

	/** Only rest-hook channels are enabled; an email delivery would be a configuration error here. */
	@Bean
	public IEmailSender emailSender() {
		return details -> {
			throw new UnsupportedOperationException("this test server sends no email");
		};
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	/** The PostgreSQL database to store in, if one is named; else an in-memory H2 database. */
	static String jdbcUrl() {
		return System.getProperty("fhircm.hapi.jdbc.url", "");
	}

	@Bean(destroyMethod = "close")
	public DataSource dataSource() {
		BasicDataSource dataSource = new BasicDataSource();
		if (jdbcUrl().isEmpty()) {
			dataSource.setDriverClassName("org.h2.Driver");
			dataSource.setUrl("jdbc:h2:mem:hapi;DB_CLOSE_DELAY=-1");
			dataSource.setUsername("sa");
			dataSource.setPassword("");
		} else {
			dataSource.setDriverClassName("org.postgresql.Driver");
			dataSource.setUrl(jdbcUrl());
			dataSource.setUsername(System.getProperty("fhircm.hapi.jdbc.user", "postgres"));
			dataSource.setPassword(System.getProperty("fhircm.hapi.jdbc.password", ""));
		}
		dataSource.setMaxTotal(20);
		return dataSource;
	}

	@Primary
	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory beanFactory,
			FhirContext fhirContext,
			JpaStorageSettings storageSettings,
			DataSource dataSource) {
		LocalContainerEntityManagerFactoryBean factory =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		Map<String, Object> properties = new HashMap<>();
		properties.put(
				"hibernate.dialect",
				(jdbcUrl().isEmpty() ? HapiFhirH2Dialect.class : HapiFhirPostgresDialect.class).getName());
		properties.put("hibernate.hbm2ddl.auto", "update");
		properties.put("hibernate.format_sql", "false");
		properties.put("hibernate.show_sql", "false");
		properties.put("hibernate.jdbc.batch_size", "20");
		properties.put("hibernate.cache.use_query_cache", "false");
		properties.put("hibernate.cache.use_second_level_cache", "false");
		properties.put("hibernate.search.enabled", "false");
		factory.setPersistenceUnitName("HAPI_PU");
		factory.setJpaPropertyMap(properties);
		factory.setDataSource(dataSource);
		return factory;
	}

	@Primary
	@Bean
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		JpaTransactionManager manager = new JpaTransactionManager();
		manager.setEntityManagerFactory(entityManagerFactory);
		return manager;
	}

	@Bean
	public IResourceSupportedSvc resourceSupportedSvc(DaoRegistry daoRegistry) {
		return new DaoRegistryResourceSupportedSvc(daoRegistry);
	}

	@Bean
	public IFulltextSearchSvc fullTextSearchSvc() {
		return new FulltextSearchSvcImpl();
	}

	/** The resource counts the CapabilityStatement reports, refreshed by HAPI's scheduler. */
	@Bean(name = "myResourceCountsCache")
	public ResourceCountCache resourceCountsCache(IFhirSystemDao<?, ?> systemDao) {
		ResourceCountCache cache = new ResourceCountCache(systemDao::getResourceCounts);
		cache.setCacheMillis(60_000);
		return cache;
	}

	@Bean
	public IHSearchSortHelper hSearchSortHelper(ISearchParamRegistry searchParamRegistry) {
		return new HSearchSortHelperImpl(searchParamRegistry);
	}

	@Bean
	public IStaleSearchDeletingSvc staleSearchDeletingSvc() {
		return new StaleSearchDeletingSvcImpl();
	}

	/** HAPI's defaults: pages of 20 unless the client asks, at most 500. */
	@Bean
	public DatabaseBackedPagingProvider databaseBackedPagingProvider() {
		DatabaseBackedPagingProvider provider = new DatabaseBackedPagingProvider();
		provider.setDefaultPageSize(20);
		provider.setMaximumPageSize(500);
		return provider;
	}
}
